using Microsoft.Extensions.Logging;

namespace Uring.Transport.Tests;

/// <summary>Kestrel's ListenHandle (systemd-style socket activation) reaches the transport as a FileHandleEndPoint.</summary>
public sealed class ListenHandleTests
{
    [Theory, Engines]
    public async Task Inherited_listening_handle_is_served_and_closed_at_stop(UringEngine engine)
    {
        // A listening socket made outside Kestrel, as a service manager would hand it over.
        int fd = NativeSocket.Listen(new IPEndPoint(IPAddress.Loopback, 0), 16, reusePort: false);
        int port = ((IPEndPoint)NativeSocket.GetLocalEndPoint(fd)!).Port;

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUringTransport(o =>
        {
            o.Engine = engine;
            o.RingCount = TestServer.RingCount;
        });
        builder.WebHost.ConfigureKestrel(k => k.ListenHandle((ulong)fd));
        WebApplication app = builder.Build();
        app.MapGet("/", (HttpContext context) => context.Features.Get<IUringConnectionFeature>()?.Engine.ToString() ?? "none");
        HashSet<string> listening = [];
        try
        {
            await app.StartAsync().WaitAsync(Limits.Step);
            using var client = new HttpClient();
            string served = await client.GetStringAsync($"http://127.0.0.1:{port}/").WaitAsync(Limits.Step);
            Assert.Equal(engine.ToString(), served);
            listening = TcpTable.ListeningOn(port);
        }
        finally
        {
            await app.StopAsync().WaitAsync(Limits.Stop);
            await app.DisposeAsync();
        }

        // The transport owned the handle, as Kestrel's Sockets transport does: stopping closed it.
        await TcpTable.AssertClosedAsync(new IPEndPoint(IPAddress.Loopback, port), listening, output: null);
    }
}
