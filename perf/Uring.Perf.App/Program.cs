// TechEmpower-style benchmark app for Uring.Transport (SampleServer.cs). Its endpoints are listed
// in HomePage.Endpoints, which GET / also shows; most are in perf/Shared/SampleEndpoints.cs
// (shared with the transport tests).
//
// Usage: Uring.Perf.App [--transport sockets|uring|uring-epoll] [--inline] [--urls URLS] [--rings N] [--tls] [--diagnostics] [--gc-endpoint] [--without F,G]

using Uring.Transport;

namespace Uring.Perf.App;

public static class Program
{
    private const string Usage =
        "usage: Uring.Perf.App [--transport sockets|uring|uring-epoll] [--inline] [--urls URLS] [--rings N] [--tls] [--diagnostics] [--gc-endpoint] [--without F,G]\n" +
        TransportSwitch.Help + "\n" +
        "  --urls       semicolon-separated listen URLs. Default: http://127.0.0.1:5000\n" +
        "  --tls        serve the https:// URLs of --urls (e.g. \"http://127.0.0.1:5000;https://127.0.0.1:5001\"), and\n" +
        "               those of Kestrel's configuration, with a self-signed ECDSA P-256 certificate made at\n" +
        "               start-up; every endpoint speaks HTTP/1.1 only (over TLS: ALPN http/1.1), unless its\n" +
        "               configuration names other protocols.\n" +
        "  --without F,G  the transport's DisabledKernelFeatures option: kernel features F, G (names as\n" +
        "               the engine log line lists them) unused, as on a kernel without them (A/B of one feature).\n" +
        "  --diagnostics  serve GET /diag (the Uring.Transport meter's values, RSS, open fds) and log\n" +
        "               warnings and errors from every category (the soak test reads both).\n" +
        "  --gc-endpoint  serve POST /gc, a benchmark aid: a full blocking, compacting GC in aggressive mode\n" +
        "               (which decommits what it can), finalizers run, a second such GC; answers 200 with\n" +
        "               the managed heap size after it, in bytes, as text (the runner's idle scenario uses it).";

    private sealed record Settings(SampleSettings Server, string? Without);

    public static async Task<int> Main(string[] args)
    {
        if (!CommandLine.TryParse(args, Usage, ParseArgs, out Settings? settings, out int exitCode))
            return exitCode;

        // Everything else off, except with --diagnostics: then Kestrel's errors (an unhandled
        // exception, a connection that failed) must show.
        var server = settings.Server;
        var app = SampleServer.Build(server, builder =>
        {
            TransportSwitch.QuietConsole(builder.Logging, server.Diagnostics ? LogLevel.Warning : LogLevel.None);
            if (settings.Without is not null) builder.Services.Configure<UringTransportOptions>(o => o.DisabledKernelFeatures = settings.Without);
        });
        await TransportSwitch.RunAsync(app, server.Engine, server.Inline, server.Urls);
        return 0;
    }

    /// <summary>Parses the command line; null means help was asked for. Throws ArgumentException on bad input.</summary>
    private static Settings? ParseArgs(string[] args)
    {
        var server = new ServerArgs("http://127.0.0.1:5000");
        bool tls = false;
        bool diagnostics = false;
        bool gcEndpoint = false;
        string? without = null;

        var line = new CommandLine(args);
        while (line.MoveNext())
        {
            switch (line.Name)
            {
                case "-h" or "--help":
                    return null;
                case "--tls": tls = line.Flag(); break;
                case "--diagnostics": diagnostics = line.Flag(); break;
                case "--gc-endpoint": gcEndpoint = line.Flag(); break;
                case "--without": without = line.Value(); break;
                default:
                    if (!server.TryTake(line)) throw line.Unknown();
                    break;
            }
        }

        return new Settings(new SampleSettings(server.Engine, server.Urls, server.Rings, server.Inline, tls, diagnostics, gcEndpoint), without);
    }
}
