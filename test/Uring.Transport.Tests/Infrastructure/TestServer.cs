using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Uring.Transport;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>How a <see cref="TestServer"/> listens, beyond the defaults (127.0.0.1, port 0, HTTP/1.1).</summary>
internal sealed record ServerSetup
{
    /// <summary>Address of the TCP listener.</summary>
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    /// <summary>Port of the TCP listener; 0 (the default) lets the kernel pick one.</summary>
    public int Port { get; init; }

    /// <summary>When set, listen on this Unix domain socket instead of TCP.</summary>
    public string? UnixSocketPath { get; init; }

    /// <summary>Protocols, TLS, connection middleware of the one endpoint.</summary>
    public Action<ListenOptions>? Listen { get; init; }

    /// <summary>Transport options beyond the engine and RingCount = 2 that every test gets.</summary>
    public Action<UringTransportOptions>? Transport { get; init; }

    /// <summary>The transport's test environment (rings, feature mask, observers). Default: the suite's.</summary>
    public TransportEnvironment Environment { get; init; } = TestEnvironment.Suite;

    /// <summary>Kestrel's own options (limits, timeouts) beyond the defaults.</summary>
    public Action<KestrelServerOptions>? Kestrel { get; init; }
}

/// <summary>
/// A real Kestrel app on the uring transport (or, for reference rows, Kestrel's own Sockets
/// transport), listening on one loopback endpoint. Disposing stops it within a time bound and
/// asserts that it stopped and that nothing was logged as an error.
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    public const int RingCount = 2;

    private readonly ITestOutputHelper? _output;
    private readonly IoLoopGroup? _group;
    private bool _stopped;

    // The sockets that listened on the port once the server had started (it holds the port, so
    // they are its own): after a stop none of them may still listen.
    private readonly HashSet<string> _listening = [];

    private TestServer(WebApplication app, LogCollector logs, ITestOutputHelper? output, string address, bool unix, IoLoopGroup? group,
        TransportEnvironment environment)
    {
        App = app;
        _group = group;
        Environment = environment;
        Logs = logs;
        _output = output;
        Address = address;
        if (unix)
        {
            BaseAddress = new Uri("http://localhost/");
        }
        else
        {
            BaseAddress = new Uri(address.TrimEnd('/') + "/");
            EndPoint = new IPEndPoint(IPAddress.Parse(BaseAddress.DnsSafeHost), BaseAddress.Port);
            _listening = TcpTable.ListeningOn(EndPoint.Port);
        }
    }

    public WebApplication App { get; }

    /// <summary>The environment the transport runs in: clients that are to share its loops use it too.</summary>
    public TransportEnvironment Environment { get; }

    public LogCollector Logs { get; }

    /// <summary>The address Kestrel reports as bound (IServerAddressesFeature), e.g. http://127.0.0.1:40123.</summary>
    public string Address { get; }

    /// <summary>Where HttpClient sends requests (http://localhost/ for a Unix socket).</summary>
    public Uri BaseAddress { get; }

    /// <summary>The TCP endpoint the server listens on; null for a Unix socket.</summary>
    public IPEndPoint? EndPoint { get; }

    /// <summary>
    /// The transport's running loops and memory pool (through the options' test hook), to observe
    /// what the transport holds: pool bytes, provided buffers in use, connections per loop.
    /// </summary>
    public IoLoopGroup Group => _group ?? throw new InvalidOperationException("Kestrel's Sockets transport has no loop group.");

    /// <summary>Kestrel's Unix socket path, when listening on one.</summary>
    public string? UnixSocketPath { get; private init; }

    /// <summary>
    /// Starts a server. <paramref name="engine"/> null means Kestrel's own Sockets transport: the
    /// reference a few tests compare the uring transport with.
    /// </summary>
    public static async Task<TestServer> StartAsync(
        UringEngine? engine, Action<WebApplication> configureApp, ITestOutputHelper? output = null, ServerSetup? setup = null)
    {
        setup ??= new ServerSetup();
        var logs = new LogCollector();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });

        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter((string?)null, LogLevel.Warning);
        builder.Logging.AddFilter("Uring.Transport", LogLevel.Debug);
        builder.Logging.AddProvider(logs);

        IoLoopGroup? group = null;
        Action<IoLoopGroup>? theirs = setup.Environment.GroupStarted;
        TransportEnvironment environment = setup.Environment with
        {
            GroupStarted = g =>
            {
                group = g;
                theirs?.Invoke(g);
            },
        };
        if (engine is UringEngine uringEngine)
        {
            builder.WebHost.UseUringTransport(environment).ConfigureServices(services => services.Configure<UringTransportOptions>(o =>
            {
                o.Engine = uringEngine;
                o.RingCount = RingCount;
                setup.Transport?.Invoke(o);
            }));
        }

        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            setup.Kestrel?.Invoke(k);
            if (setup.UnixSocketPath is { } path)
                k.ListenUnixSocket(path, lo => setup.Listen?.Invoke(lo));
            else
                k.Listen(setup.Address, setup.Port, lo => setup.Listen?.Invoke(lo));
        });

        WebApplication app = builder.Build();
        try
        {
            configureApp(app);
            using var cts = new CancellationTokenSource(Limits.Step);
            await app.StartAsync(cts.Token).WaitAsync(Limits.Step);
            string address = Assert.Single(app.Urls);
            return new TestServer(app, logs, output, address, setup.UnixSocketPath is not null, group, environment)
            {
                UnixSocketPath = setup.UnixSocketPath,
            };
        }
        catch
        {
            WriteLogs(output, logs);
            await DisposeAppAsync(app);
            throw;
        }
    }

    /// <summary>An HttpClient (SocketsHttpHandler, no proxy) aimed at this server.</summary>
    public HttpClient CreateClient(Action<SocketsHttpHandler>? configure = null)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        if (UnixSocketPath is { } path)
        {
            handler.ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }
        configure?.Invoke(handler);
        return new HttpClient(handler) { BaseAddress = BaseAddress, Timeout = Limits.Step };
    }

    /// <summary>A raw TCP connection to the server.</summary>
    public Task<RawConnection> ConnectRawAsync(Action<Socket>? configure = null) =>
        RawConnection.ConnectAsync(EndPoint ?? throw new InvalidOperationException("The server listens on a Unix socket."), configure);

    /// <summary>
    /// Stops the app gracefully, giving Kestrel <see cref="Limits.Stop"/> to drain; asserts that the stop
    /// returned in time and that the listener no longer accepts. Returns how long the stop took.
    /// </summary>
    public async Task<TimeSpan> StopAsync()
    {
        if (_stopped) return TimeSpan.Zero;
        _stopped = true;
        var stopwatch = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(Limits.Stop);
        Task stop = App.StopAsync(cts.Token);
        // Kestrel aborts what is left when the token fires; a transport that never completes its
        // connections or listeners would still hang the stop, hence the hard bound.
        if (await Task.WhenAny(stop, Task.Delay(Limits.Stop + TimeSpan.FromSeconds(5))) != stop)
            Assert.Fail($"StopAsync did not return within {(Limits.Stop + TimeSpan.FromSeconds(5)).TotalSeconds} s.{DumpLogs()}");
        await stop;
        stopwatch.Stop();

        if (EndPoint is not null)
        {
            await TcpTable.AssertClosedAsync(EndPoint, _listening, _output);
        }
        return stopwatch.Elapsed;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
            IReadOnlyList<LogCollector.Entry> errors = Logs.Errors();
            Assert.True(errors.Count == 0,
                $"The server logged {errors.Count} error(s):{System.Environment.NewLine}{string.Join(System.Environment.NewLine, errors)}");
        }
        finally
        {
            WriteLogs(_output, Logs);
            await DisposeAppAsync(App);
        }
    }

    private string DumpLogs() =>
        System.Environment.NewLine + string.Join(System.Environment.NewLine, Logs.Entries.TakeLast(50));

    private static async Task DisposeAppAsync(WebApplication app)
    {
        ValueTask dispose = app.DisposeAsync();
        if (!dispose.IsCompleted)
            await dispose.AsTask().WaitAsync(Limits.Stop);
    }

    /// <summary>The transport's own entries and everything at Warning or above, to the test's output.</summary>
    private static void WriteLogs(ITestOutputHelper? output, LogCollector logs)
    {
        if (output is null) return;
        foreach (LogCollector.Entry entry in logs.Entries.Take(500))
        {
            try
            {
                output.WriteLine(entry.ToString());
            }
            catch (InvalidOperationException)
            {
                return; // the test has already finished
            }
        }
    }
}
