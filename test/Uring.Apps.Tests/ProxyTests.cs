using System.Net.Http;
using Uring.Proxy.App;
using Yarp.ReverseProxy.Forwarder;

namespace Uring.Apps.Tests;

/// <summary>
/// The YARP proxy (perf/Uring.Proxy.App) with both of its sides on the engine under test, in front
/// of a backend on Kestrel's Sockets transport; the null row is the proxy all on Sockets (YARP's
/// defaults), the reference the other rows must match.
/// </summary>
public sealed class ProxyTests(ITestOutputHelper output)
{
    private const int EightMiB = 8 * 1024 * 1024;

    /// <summary>The backend's endpoints: what each test sends through the proxy.</summary>
    private static void MapBackend(WebApplication app)
    {
        app.MapGet("/plaintext", () => "Hello, World!");
        app.MapGet("/c/{c}/r/{r}", (string c, string r) => $"{c}/{r}");
        // The upload's length and hash, so the test can tell that every byte arrived in order.
        app.MapPost("/hash", async context =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            long length = 0;
            int n;
            while ((n = await context.Request.Body.ReadAsync(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                length += n;
            }
            await context.Response.WriteAsync($"{length} {Convert.ToHexString(hash.GetHashAndReset())}");
        });
        // 8 MiB of a seeded pattern, 64 KiB per write.
        app.MapGet("/download", async context =>
        {
            byte[] body = TestData.Random(EightMiB, seed: 12);
            context.Response.ContentLength = body.Length;
            for (int offset = 0; offset < body.Length; offset += 64 * 1024)
                await context.Response.Body.WriteAsync(body.AsMemory(offset, 64 * 1024));
        });
        // Announces 1 MiB, sends 64 KiB of it, then resets the connection.
        app.MapGet("/reset", async context =>
        {
            context.Response.ContentLength = 1024 * 1024;
            await context.Response.Body.WriteAsync(new byte[64 * 1024]);
            await context.Response.Body.FlushAsync();
            await Task.Delay(100);
            context.Abort();
        });
    }

    private Task<AppHost> StartBackendAsync(Action<WebApplication>? more = null) =>
        AppHost.StartBackendAsync(app =>
        {
            MapBackend(app);
            more?.Invoke(app);
        }, output);

    private Task<AppHost> StartProxyAsync(UringEngine? engine, Uri backend) =>
        AppHost.StartAsync(hook => ProxyServer.Build(
            new ProxySettings(backend, (UringEngine?)engine, "http://127.0.0.1:0", Rings: 2), hook), output);

    private static HttpClient Client(AppHost proxy) =>
        new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = proxy.Address(), Timeout = Limits.Step };

    /// <summary>On the uring rows, the forwarder's connections went through the transport; on the Sockets row, YARP's own factory is in place.</summary>
    private static void AssertOutboundTransport(AppHost proxy, UringEngine? engine)
    {
        var factory = proxy.App.Services.GetService(typeof(IForwarderHttpClientFactory));
        if (engine is null)
        {
            Assert.IsNotType<UringForwarderHttpClientFactory>(factory);
            return;
        }
        var uring = Assert.IsType<UringForwarderHttpClientFactory>(factory);
        Assert.Equal(engine, uring.Engine);
        Assert.True(uring.Connections > 0, "no outbound connection went through the transport");
    }

    [Theory, Engines, InlineData(null)]
    public async Task Plaintext_through_the_proxy_is_the_backends_answer(UringEngine? engine)
    {
        await using var backend = await StartBackendAsync();
        await using var proxy = await StartProxyAsync(engine, backend.Address());
        using HttpClient client = Client(proxy);

        using HttpResponseMessage response = await client.GetAsync("plaintext");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Hello, World!", await response.Content.ReadAsStringAsync());
        AssertOutboundTransport(proxy, engine);
    }

    [Theory, Engines, InlineData(null)]
    public async Task Upload_of_8_MiB_reaches_the_backend_byte_exact(UringEngine? engine)
    {
        await using var backend = await StartBackendAsync();
        await using var proxy = await StartProxyAsync(engine, backend.Address());
        using HttpClient client = Client(proxy);
        byte[] upload = TestData.Random(EightMiB, seed: 8);

        using HttpResponseMessage response = await client.PostAsync("hash", new ByteArrayContent(upload));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"{EightMiB} {TestData.Sha256(upload)}", await response.Content.ReadAsStringAsync());
        AssertOutboundTransport(proxy, engine);
    }

    [Theory, Engines, InlineData(null)]
    public async Task Download_of_8_MiB_arrives_byte_exact(UringEngine? engine)
    {
        await using var backend = await StartBackendAsync();
        await using var proxy = await StartProxyAsync(engine, backend.Address());
        using HttpClient client = Client(proxy);

        byte[] body = await client.GetByteArrayAsync("download");

        Assert.Equal(EightMiB, body.Length);
        Assert.Equal(TestData.Sha256(TestData.Random(EightMiB, seed: 12)), TestData.Sha256(body));
    }

    [Theory, Engines, InlineData(null)]
    public async Task Hundred_concurrent_clients_each_get_their_own_answers(UringEngine? engine)
    {
        const int Clients = 100, RequestsEach = 20;
        await using var backend = await StartBackendAsync();
        await using var proxy = await StartProxyAsync(engine, backend.Address());
        int answered = 0;

        // One HttpClient (so one connection) per client: 100 connections into the proxy at once.
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(async c =>
        {
            using HttpClient client = Client(proxy);
            for (int r = 0; r < RequestsEach; r++)
            {
                Assert.Equal($"{c}/{r}", await client.GetStringAsync($"c/{c}/r/{r}"));
                Interlocked.Increment(ref answered);
            }
        })).WaitAsync(Limits.Step * 2);

        Assert.Equal(Clients * RequestsEach, answered);
        AssertOutboundTransport(proxy, engine);
    }

    [Theory, Engines, InlineData(null)]
    public async Task Backend_reset_mid_response_fails_the_clients_body_and_the_proxy_goes_on(UringEngine? engine)
    {
        await using var backend = await StartBackendAsync();
        await using var proxy = await StartProxyAsync(engine, backend.Address());
        using HttpClient client = Client(proxy);

        // The headers (200, Content-Length 1 MiB) were forwarded before the reset, so YARP can only
        // cut the client's response short: the body read fails, as on Sockets.
        using HttpResponseMessage response = await client.GetAsync("reset", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1024 * 1024, response.Content.Headers.ContentLength);
        Stream body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        long received = 0;
        Exception failure = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            int n;
            while ((n = await body.ReadAsync(buffer).AsTask().WaitAsync(Limits.Step)) > 0)
                received += n;
        });
        output.WriteLine($"received {received} bytes, then {failure.GetType().Name}: {failure.Message}");
        // As on Sockets: YARP resets the client's connection (RST), after forwarding what had come.
        var io = Assert.IsType<IOException>(failure);
        var reset = Assert.IsType<System.Net.Sockets.SocketException>(io.InnerException);
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionReset, reset.SocketErrorCode);
        Assert.InRange(received, 0, 64 * 1024);

        // The proxy still forwards.
        Assert.Equal("Hello, World!", await client.GetStringAsync("plaintext"));
    }

    [Theory, Engines, InlineData(null)]
    public async Task Backend_down_gives_502(UringEngine? engine)
    {
        // A port that was just free: nothing listens there.
        int port;
        using (var probe = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }
        await using var proxy = await StartProxyAsync(engine, new Uri($"http://127.0.0.1:{port}/"));
        using HttpClient client = Client(proxy);

        using HttpResponseMessage response = await client.GetAsync("plaintext");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
    }

    [Theory, Engines, InlineData(null)]
    public async Task Graceful_stop_completes_the_requests_in_flight(UringEngine? engine)
    {
        const int Requests = 20;
        int entered = 0;
        var allEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await StartBackendAsync(app => app.MapGet("/slow", async context =>
        {
            if (Interlocked.Increment(ref entered) == Requests) allEntered.TrySetResult();
            await allEntered.Task;
            await Task.Delay(500); // still running when the proxy's stop begins
            await context.Response.WriteAsync("done");
        }));
        await using var proxy = await StartProxyAsync(engine, backend.Address());
        using HttpClient client = Client(proxy);

        Task<HttpResponseMessage>[] requests = [.. Enumerable.Range(0, Requests).Select(_ => client.GetAsync("slow"))];
        await allEntered.Task.WaitAsync(Limits.Step);
        await proxy.StopAsync();
        HttpResponseMessage[] responses = await Task.WhenAll(requests).WaitAsync(Limits.Step);

        foreach (HttpResponseMessage response in responses)
        {
            using (response)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("done", await response.Content.ReadAsStringAsync());
            }
        }
        // Stopped: the listener is gone.
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("plaintext"));
    }
}
