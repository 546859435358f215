using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Uring.Transport;

namespace Uring.Perf;

/// <summary>
/// The perf apps' <c>--transport sockets|uring|uring-epoll</c>, <c>--inline</c> and <c>--rings</c>:
/// which transport Kestrel runs on, and the start-up lines the benchmark runner reads (PID,
/// "listening on", and the transport's own engine line), and their quiet console log. Linked into each perf app.
/// </summary>
internal static class TransportSwitch
{
    public const string Names = "sockets|uring|uring-epoll";

    public const string Help =
        "  --transport  sockets = Kestrel's Sockets transport; uring = io_uring transport (engine Auto);\n" +
        "               uring-epoll = io_uring transport forced onto its epoll engine. Default: uring.\n" +
        "  --inline     run request processing inline on the I/O threads (UnsafePreferInlineScheduling).\n" +
        "  --rings N    uring: RingCount (I/O loops); sockets: IOQueueCount. Default: transport's own.";

    /// <summary>The engine a <c>--transport</c> value names: null for sockets. Throws ArgumentException naming the value.</summary>
    public static UringEngine? Parse(string transport) => transport switch
    {
        "sockets" => null,
        "uring" => UringEngine.Auto,
        "uring-epoll" => UringEngine.Epoll,
        _ => throw new ArgumentException($"unknown transport '{transport}' (expected sockets, uring or uring-epoll)"),
    };

    /// <summary>Puts Kestrel on the uring transport with <paramref name="engine"/>, or on Sockets (null), with the loop count and scheduling asked for.</summary>
    public static void Apply(IWebHostBuilder webHost, UringEngine? engine, bool inline, int? rings)
    {
        if (engine is UringEngine e)
        {
            webHost.UseUringTransport(o =>
            {
                o.Engine = e;
                if (inline)
                {
                    o.UnsafePreferInlineScheduling = true;
                }
                if (rings is int n)
                {
                    o.RingCount = n;
                }
            });
        }
        else if (inline || rings is not null)
        {
            webHost.UseSockets(o =>
            {
                if (inline)
                {
                    o.UnsafePreferInlineScheduling = true;
                }
                if (rings is int n)
                {
                    o.IOQueueCount = n;
                }
            });
        }
    }

    /// <summary>
    /// The perf apps' console log, quiet under load: one line per entry, nothing below
    /// <paramref name="floor"/> (also overriding any Logging:LogLevel:Default from the environment)
    /// except the transport's start-up events (engine chosen and why) and the host's lifetime lines.
    /// </summary>
    public static void QuietConsole(ILoggingBuilder logging, LogLevel floor)
    {
        logging.ClearProviders();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        logging.SetMinimumLevel(floor);
        logging.AddFilter((string?)null, floor);
        logging.AddFilter("Uring.Transport", LogLevel.Information);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
    }

    /// <summary>Prints the banner, starts the app, prints "listening on" and runs until the host shuts down.</summary>
    public static async Task RunAsync(WebApplication app, UringEngine? engine, bool inline, string urls)
    {
        PrintBanner(app, engine, inline);
        await app.StartAsync();
        PrintListening(app, urls);
        await app.WaitForShutdownAsync();
    }

    /// <summary>The lines printed before the host starts: PID (the runner measures that process), transport, engine requested, rings, inline.</summary>
    private static void PrintBanner(WebApplication app, UringEngine? engine, bool inline)
    {
        Console.WriteLine($"PID {Environment.ProcessId}");
        Console.WriteLine($"transport {(engine is null ? "sockets" : "uring")}");
        if (engine is not null)
        {
            var options = app.Services.GetRequiredService<IOptions<UringTransportOptions>>().Value;
            string? envEngine = Environment.GetEnvironmentVariable("URING_TRANSPORT_ENGINE");
            Console.WriteLine($"engine requested {options.Engine}" +
                (string.IsNullOrEmpty(envEngine) ? "" : $" (URING_TRANSPORT_ENGINE={envEngine} overrides)") +
                "; engine chosen: see the Uring.Transport log line");
            Console.WriteLine($"rings {options.RingCount}");
        }
        Console.WriteLine($"inline {inline}");
    }

    /// <summary>"listening on ADDRESSES", once the host has started: the runner waits for it.</summary>
    private static void PrintListening(WebApplication app, string urls)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
        Console.WriteLine($"listening on {(addresses is { Count: > 0 } ? string.Join(';', addresses) : urls)}");
    }
}

/// <summary>
/// The options every perf server takes, <c>--transport</c>, <c>--inline</c>, <c>--urls</c> and
/// <c>--rings</c>, as a program's own parser meets them (see <see cref="TryTake"/>).
/// </summary>
internal sealed class ServerArgs(string defaultUrls)
{
    /// <summary>Null: Kestrel's Sockets transport.</summary>
    public UringEngine? Engine { get; private set; } = UringEngine.Auto;

    public bool Inline { get; private set; }

    public string Urls { get; private set; } = defaultUrls;

    public int? Rings { get; private set; }

    /// <summary>Takes the current option when it is one of these (throwing ArgumentException on a bad value); false for any other.</summary>
    public bool TryTake(CommandLine line)
    {
        switch (line.Name)
        {
            case "--transport":
                Engine = TransportSwitch.Parse(line.Value());
                return true;
            case "--inline":
                Inline = line.Flag();
                return true;
            case "--urls":
                Urls = line.Value();
                if (string.IsNullOrWhiteSpace(Urls)) throw new ArgumentException("--urls must not be empty");
                return true;
            case "--rings":
                Rings = line.Int(1);
                return true;
            default:
                return false;
        }
    }
}
