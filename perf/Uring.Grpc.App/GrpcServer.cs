using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Uring.Transport;

namespace Uring.Grpc.App;

/// <summary>What the gRPC app listens on.</summary>
/// <param name="Engine">null = Kestrel's Sockets transport; else the uring transport with this engine.</param>
/// <param name="Urls">Semicolon-separated listen URLs, all HTTP/2 only: http:// is h2c (prior knowledge), https:// is TLS with ALPN h2 on <see cref="GrpcServer.Certificate"/>.</param>
/// <param name="Rings">uring: RingCount; sockets: IOQueueCount; null = the transport's default.</param>
/// <param name="Inline">UnsafePreferInlineScheduling.</param>
public sealed record GrpcSettings(UringEngine? Engine, string Urls, int? Rings = null, bool Inline = false);

/// <summary>The gRPC app: <see cref="BenchService"/> on Kestrel, h2c and/or TLS endpoints.</summary>
public static class GrpcServer
{
    private static readonly Lazy<X509Certificate2> s_certificate = new(Uring.Perf.SelfSignedCertificate.Create);

    /// <summary>The self-signed certificate (localhost, 127.0.0.1) the https endpoints serve, made once per process.</summary>
    public static X509Certificate2 Certificate => s_certificate.Value;

    /// <summary>Builds the app (not started). <paramref name="configure"/> runs last on the builder (tests add their log collector there).</summary>
    public static WebApplication Build(GrpcSettings settings, Action<WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls(settings.Urls);
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // gRPC is HTTP/2 only; on a cleartext endpoint that means prior knowledge (h2c).
            k.ConfigureEndpointDefaults(lo => lo.Protocols = HttpProtocols.Http2);
            k.ConfigureHttpsDefaults(https => https.ServerCertificate = Certificate);
        });
        Uring.Perf.TransportSwitch.Apply(builder.WebHost, settings.Engine, settings.Inline, settings.Rings);

        builder.Services.AddSingleton<StreamLog>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = BenchService.MaxMessageBytes;
            o.MaxSendMessageSize = BenchService.MaxMessageBytes;
        });
        configure?.Invoke(builder);

        var app = builder.Build();
        app.MapGrpcService<BenchService>();
        return app;
    }
}
