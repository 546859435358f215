using Microsoft.AspNetCore.Server.Kestrel.Core;
using Uring.Transport;

namespace Uring.Perf.App;

/// <summary>What the sample app serves, and on what.</summary>
/// <param name="Engine">null = Kestrel's Sockets transport; else the uring transport with this engine.</param>
/// <param name="Urls">Semicolon-separated listen URLs.</param>
/// <param name="Rings">uring: RingCount; sockets: IOQueueCount; null = the transport's default.</param>
/// <param name="Inline">UnsafePreferInlineScheduling.</param>
/// <param name="Tls">https:// URLs served on a self-signed ECDSA P-256 certificate, every endpoint HTTP/1.1 only (--tls).</param>
/// <param name="Diagnostics">GET /diag is served (--diagnostics).</param>
/// <param name="GcEndpoint">POST /gc is served (--gc-endpoint).</param>
public sealed record SampleSettings(UringEngine? Engine, string Urls, int? Rings = null, bool Inline = false, bool Tls = false,
    bool Diagnostics = false, bool GcEndpoint = false);

/// <summary>The sample app: <see cref="SampleEndpoints"/>, its first page (<see cref="HomePage"/>), /diag and /gc.</summary>
public static class SampleServer
{
    /// <summary>Builds the app (not started). <paramref name="configure"/> runs last on the builder (the program sets its console log there, tests their log collector).</summary>
    public static WebApplication Build(SampleSettings settings, Action<WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
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
        configure?.Invoke(builder);

        // After configure, whose log set-up may clear the providers.
        var engineLog = new EngineLog();
        builder.Logging.AddProvider(engineLog);
        builder.Logging.AddFilter<EngineLog>(EngineLog.Category, LogLevel.Information); // whatever the other filters say
        var home = new HomePage(engineLog);
        var diagnostics = settings.Diagnostics ? new TransportDiagnostics() : null;

        var app = builder.Build();
        app.Run(context => Handle(context, home, diagnostics, settings.GcEndpoint));
        return app;
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

    // The endpoints live in perf/Shared/SampleEndpoints.cs (the transport tests serve them too);
    // only /, which tells what this process runs on, /diag, which needs this process's
    // diagnostics, and /gc, a benchmark aid of this app's own, are answered here.
    private static Task Handle(HttpContext context, HomePage home, TransportDiagnostics? diagnostics, bool gcEndpoint)
    {
        string? path = context.Request.Path.Value;
        if (HttpMethods.IsGet(context.Request.Method))
        {
            if (string.Equals(path, "/", StringComparison.Ordinal))
            {
                return home.WriteAsync(context);
            }
            if (diagnostics is not null && string.Equals(path, "/diag", StringComparison.Ordinal))
            {
                return diagnostics.WriteAsync(context.Response);
            }
        }
        if (gcEndpoint && HttpMethods.IsPost(context.Request.Method) && string.Equals(path, "/gc", StringComparison.Ordinal))
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
