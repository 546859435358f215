// A Kestrel server on the uring transport, run by Uring.Transport.Tests in a process of its own
// for what must not happen to the test host: running out of file descriptors, SIGTERM under load,
// a seccomp filter.
//
//   Uring.Transport.ChildServer --engine iouring|epoll|auto [--fd-headroom N] [--backlog N] [--seccomp-deny-io-uring]
//
// Listens on 127.0.0.1 (a free port) with two I/O loops and serves
//   GET  /plaintext        "Hello, World!"
//   GET  /download?size=N  N bytes from new Random(N)
//   POST /echo             the request body
//   GET  /engine           the engine serving the connection: IoUring or Epoll
//
// --seccomp-deny-io-uring: before anything else, a kernel seccomp filter (Seccomp.cs) is installed
// on every thread, answering io_uring_setup, io_uring_enter and io_uring_register with EPERM as
// Docker's default profile does; the process then calls the three itself and reports their answers.
//
// --backlog N: UringTransportOptions.Backlog (default: the option's default).
//
// --fd-headroom N: RLIMIT_NOFILE is set so that, once the server listens, exactly N more fds can
// be opened (N connections). It is set before the server starts, because an armed io_uring accept
// keeps the limit that held when it was prepared.
//
// It reports on stdout, one line per event:
//   SECCOMP <what the three answered>      the filter is installed (with --seccomp-deny-io-uring),
//                                          e.g. "io_uring_setup=EPERM io_uring_enter=EPERM io_uring_register=EPERM"
//   LIMITED <limit>                        RLIMIT_NOFILE set (with --fd-headroom)
//   READY <port>                           listening
//   LOG <Level> <Category>[<EventId>] <Message>
//                                          Uring.Transport from Information, the rest from Warning
//   STOPPED                                the host has stopped; the process exits 0 next
// An exception that escapes crashes the process as the runtime does ("Unhandled exception." on
// stderr, a non-zero exit code): that is what the tests look for.

using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Uring.Transport.Internal;

namespace Uring.Transport.ChildServer;

public static partial class Program
{
    public static async Task<int> Main(string[] args)
    {
        const string Usage = "usage: --engine iouring|epoll|auto [--fd-headroom N] [--backlog N] [--seccomp-deny-io-uring]";
        if (args is not ["--engine", string e, .. string[] options])
            throw new ArgumentException(Usage);
        UringEngine engine = EngineSelector.Parse(e);
        int? headroom = null, backlog = null;
        for (int i = 0; i < options.Length; i++)
        {
            switch (options[i])
            {
                case "--fd-headroom" when i + 1 < options.Length:
                    headroom = int.Parse(options[++i]);
                    break;
                case "--backlog" when i + 1 < options.Length:
                    backlog = int.Parse(options[++i]);
                    break;
                case "--seccomp-deny-io-uring":
                    Seccomp.DenyIoUring();
                    Console.WriteLine($"SECCOMP {Seccomp.TryIoUring()}");
                    break;
                default:
                    throw new ArgumentException(Usage);
            }
        }
        var fillers = new List<SafeFileHandle>();
        if (headroom is int n)
            await LimitFdsAsync(engine, n, fillers);

        WebApplication app = Build(engine, backlog);
        await app.StartAsync();
        Console.WriteLine($"READY {new Uri(app.Urls.Single()).Port}");
        await app.WaitForShutdownAsync();
        await app.DisposeAsync();
        Console.WriteLine("STOPPED");
        GC.KeepAlive(fillers);
        return 0;
    }

    private static WebApplication Build(UringEngine engine, int? backlog = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter((string?)null, LogLevel.Warning);
        builder.Logging.AddFilter("Uring.Transport", LogLevel.Information);
        builder.Logging.AddProvider(new LineLoggerProvider());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.WebHost.UseUringTransport(new TransportEnvironment { FeatureMask = Uring.Tests.TestKernel.Limit }).ConfigureServices(services =>
            services.Configure<UringTransportOptions>(o =>
            {
                o.Engine = engine;
                o.RingCount = 2;
                if (backlog is int b) o.Backlog = b;
            }));
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));

        WebApplication app = builder.Build();
        app.MapGet("/plaintext", () => "Hello, World!");
        app.MapGet("/download", (int size) =>
        {
            var body = new byte[size];
            new Random(size).NextBytes(body);
            return Results.Bytes(body, "application/octet-stream");
        });
        app.MapGet("/engine", (HttpContext context) => context.Features.Get<IUringConnectionFeature>()?.Engine.ToString() ?? "none");
        app.MapPost("/echo", async context =>
        {
            context.Response.ContentLength = context.Request.ContentLength;
            await context.Request.Body.CopyToAsync(context.Response.Body);
        });
        return app;
    }

    /// <summary>
    /// Sets RLIMIT_NOFILE so that the server, once listening, can open exactly <paramref name="headroom"/>
    /// more fds. A first server runs and serves a request (everything loaded lazily is loaded, and it
    /// shows how many fds a listening server holds), then stops. The limit caps fd numbers, not their
    /// count, so the holes below the highest open fd are filled before it is set.
    /// </summary>
    private static async Task LimitFdsAsync(UringEngine engine, int headroom, List<SafeFileHandle> fillers)
    {
        WebApplication warmUp = Build(engine);
        await warmUp.StartAsync();
        await GetPlaintextAsync(new Uri(warmUp.Urls.Single()).Port);
        await Task.Delay(200); // the server closes its side
        int listening = OpenFds().Length;
        await warmUp.StopAsync();
        await warmUp.DisposeAsync();
        int serverFds = listening - OpenFds().Length;

        int highest = OpenFds().Max();
        while (true)
        {
            SafeFileHandle filler = File.OpenHandle("/dev/null"); // takes the lowest free number
            if ((int)filler.DangerousGetHandle() > highest)
            {
                filler.Dispose();
                break;
            }
            fillers.Add(filler);
        }
        ulong limit = (ulong)(highest + 1 + serverFds + headroom);
        var rlimit = new RLimit { Current = limit, Maximum = limit };
        if (setrlimit(RLIMIT_NOFILE, ref rlimit) != 0)
            throw new InvalidOperationException($"setrlimit failed: errno {Marshal.GetLastPInvokeError()}");
        Console.WriteLine($"LIMITED {limit}");
    }

    private static async Task GetPlaintextAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port);
        await socket.SendAsync("GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        var buffer = new byte[4096];
        while (await socket.ReceiveAsync(buffer) > 0) { }
    }

    /// <summary>The fd numbers open now, less the one listing them.</summary>
    private static int[] OpenFds() => new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos()
        .Where(fd => fd.LinkTarget is not { } target || !target.EndsWith("/fd", StringComparison.Ordinal))
        .Select(fd => int.Parse(fd.Name))
        .ToArray();

    private const int RLIMIT_NOFILE = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, ref RLimit limit);

    /// <summary>One "LOG ..." line per entry (exceptions indented below it) on stdout.</summary>
    private sealed class LineLoggerProvider : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new LineLogger(categoryName);

        public void Dispose()
        {
        }

        private sealed class LineLogger(string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                string text = $"LOG {logLevel} {category}[{eventId.Id}] {formatter(state, exception)}";
                if (exception is not null) text += Environment.NewLine + "    " + exception.ToString().Replace(Environment.NewLine, Environment.NewLine + "    ");
                Console.WriteLine(text);
            }
        }
    }
}
