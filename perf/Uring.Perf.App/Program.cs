// TechEmpower-style benchmark app for Uring.Transport. The endpoints are in
// perf/Shared/SampleEndpoints.cs (shared with the transport tests), except /diag and /gc:
//
//   GET /plaintext            -> "Hello, World!"                 text/plain
//   GET /json                 -> {"message":"Hello, World!"}    application/json (source-generated System.Text.Json)
//   POST /echo                -> the request body                application/octet-stream
//   GET /download?size=N&seed=S -> N bytes from new Random(S)     application/octet-stream (the soak test's downloads)
//   GET /bytes?size=N         -> N bytes of one fixed pattern    application/octet-stream (the large-response benchmark)
//   POST /upload              -> the body's length, as text      text/plain (the upload benchmark: the body is read and dropped)
//   GET /diag                 -> the transport's meter, RSS, fds  application/json (only with --diagnostics)
//   POST /gc                  -> a full, compacting, aggressive   text/plain (only with --gc-endpoint: a benchmark aid,
//                                GC; then the managed heap size      the idle scenario's GC-normalized memory figure)
//                                in bytes (GC.GetTotalMemory)
//   anything else             -> 404
//
// Usage: Uring.Perf.App [--transport sockets|uring|uring-epoll] [--inline] [--urls URLS] [--rings N] [--tls] [--diagnostics] [--gc-endpoint] [--without F,G]

using Microsoft.AspNetCore.Server.Kestrel.Core;
using Uring.Native;
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
        "  --without F,G  withhold kernel features F, G (names of Uring.Native.RingFeatures) from the rings,\n" +
        "               as on a kernel without them: for A/B benchmarks of one feature.\n" +
        "  --diagnostics  serve GET /diag (the Uring.Transport meter's values, RSS, open fds) and log\n" +
        "               warnings and errors from every category (the soak test reads both).\n" +
        "  --gc-endpoint  serve POST /gc, a benchmark aid: a full blocking, compacting GC in aggressive mode\n" +
        "               (which decommits what it can), finalizers run, a second such GC; answers 200 with\n" +
        "               the managed heap size after it, in bytes, as text (the runner's idle scenario uses it).";

    private sealed record Settings(UringEngine? Engine, bool Inline, string Urls, int? Rings, bool Tls, bool Diagnostics, bool GcEndpoint, RingFeatures Without);

    private static TransportDiagnostics? s_diagnostics;

    /// <summary>--gc-endpoint: POST /gc is served.</summary>
    private static bool s_gcEndpoint;

    public static async Task<int> Main(string[] args)
    {
        if (!CommandLine.TryParse(args, Usage, ParseArgs, out Settings? settings, out int exitCode))
            return exitCode;

        KernelProbe.Limit &= ~settings.Without;
        s_gcEndpoint = settings.GcEndpoint;

        // Command-line args are parsed here, not handed to the host's configuration.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });

        // Everything else off, except with --diagnostics: then Kestrel's errors (an unhandled
        // exception, a connection that failed) must show.
        TransportSwitch.QuietConsole(builder.Logging, settings.Diagnostics ? LogLevel.Warning : LogLevel.None);
        if (settings.Diagnostics)
        {
            s_diagnostics = new TransportDiagnostics();
        }

        builder.WebHost.UseUrls(settings.Urls);
        builder.WebHost.ConfigureKestrel(o =>
        {
            o.AddServerHeader = false;
            o.AllowSynchronousIO = false;
        });
        if (settings.Tls)
        {
            UseTls(builder.WebHost);
        }

        TransportSwitch.Apply(builder.WebHost, settings.Engine, settings.Inline, settings.Rings);

        var app = builder.Build();
        app.Run(Handle);

        await TransportSwitch.RunAsync(app, settings.Engine, settings.Inline, settings.Urls);
        return 0;
    }

    /// <summary>Parses the command line; null means help was asked for. Throws ArgumentException on bad input.</summary>
    private static Settings? ParseArgs(string[] args)
    {
        var server = new ServerArgs("http://127.0.0.1:5000");
        bool tls = false;
        bool diagnostics = false;
        bool gcEndpoint = false;
        RingFeatures without = RingFeatures.None;

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
                case "--without":
                    foreach (string name in line.Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                        without |= Enum.TryParse(name, ignoreCase: true, out RingFeatures f) ? f
                            : throw new ArgumentException($"--without: '{name}' is not a feature ({string.Join(", ", Enum.GetNames<RingFeatures>())})");
                    break;
                default:
                    if (!server.TryTake(line)) throw line.Unknown();
                    break;
            }
        }

        return new Settings(server.Engine, server.Inline, server.Urls, server.Rings, tls, diagnostics, gcEndpoint, without);
    }

    /// <summary>
    /// --tls: https endpoints on a certificate made now (none on disk), HTTP/1.1 only so that wrk,
    /// which offers no ALPN, and every HTTP/1.1 client get what they expect.
    /// </summary>
    private static void UseTls(IWebHostBuilder webHost)
    {
        var certificate = SelfSignedCertificate.CreateEcdsa();
        webHost.UseKestrelHttpsConfiguration(); // the slim builder leaves https:// URLs out otherwise
        webHost.ConfigureKestrel(o =>
        {
            o.ConfigureHttpsDefaults(https => https.ServerCertificate = certificate);
            // Endpoint defaults cannot tell TLS endpoints apart; on cleartext ones Kestrel's default,
            // Http1AndHttp2, speaks HTTP/1.1 only anyway. An endpoint configured with Protocols keeps them.
            o.ConfigureEndpointDefaults(listen => listen.Protocols = HttpProtocols.Http1);
        });
    }

    // ---- request handling -------------------------------------------------------------------

    // The endpoints live in perf/Shared/SampleEndpoints.cs (the transport tests serve them too);
    // only /diag, which needs this process's diagnostics, and /gc, a benchmark aid of this app's
    // own, are answered here.
    private static Task Handle(HttpContext context)
    {
        if (s_diagnostics is not null && HttpMethods.IsGet(context.Request.Method)
            && string.Equals(context.Request.Path.Value, "/diag", StringComparison.Ordinal))
        {
            return s_diagnostics.WriteAsync(context.Response);
        }
        if (s_gcEndpoint && HttpMethods.IsPost(context.Request.Method)
            && string.Equals(context.Request.Path.Value, "/gc", StringComparison.Ordinal))
        {
            return CollectAsync(context.Response);
        }
        return SampleEndpoints.Handle(context);
    }

    /// <summary>
    /// POST /gc (--gc-endpoint): a full blocking, compacting GC in aggressive mode (it also
    /// decommits what it can: the gen0 budget, free regions), the finalizers, then another one, so
    /// that the RSS read next holds the live memory rather than whatever the GC had committed.
    /// Answers the managed heap size after it, in bytes.
    /// </summary>
    private static Task CollectAsync(HttpResponse response)
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, true, true);
        byte[] body = System.Text.Encoding.ASCII.GetBytes(GC.GetTotalMemory(false).ToString(System.Globalization.CultureInfo.InvariantCulture));
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/plain";
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body).AsTask();
    }
}
