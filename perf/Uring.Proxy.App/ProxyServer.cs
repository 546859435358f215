using Uring.Transport;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Uring.Proxy.App;

/// <summary>What the proxy listens on and forwards to.</summary>
/// <param name="Backend">The one destination: every request goes there (absolute http or https URL).</param>
/// <param name="Engine">The transport of both sides: null = Kestrel's Sockets transport and YARP's default SocketsHttpHandler; else the uring transport with this engine, inbound and outbound.</param>
/// <param name="Urls">Listen URLs, semicolon-separated.</param>
/// <param name="Rings">uring: RingCount; sockets: IOQueueCount; null = the transport's default.</param>
/// <param name="Inline">UnsafePreferInlineScheduling on the inbound transport.</param>
public sealed record ProxySettings(Uri Backend, UringEngine? Engine, string Urls, int? Rings = null, bool Inline = false);

/// <summary>The proxy app: one YARP route (every path) to one cluster with one destination.</summary>
public static class ProxyServer
{
    public const string RouteId = "all";
    public const string ClusterId = "backend";

    /// <summary>
    /// Builds the proxy (not started). <paramref name="configure"/> runs last on the builder
    /// (tests add their log collector there). Throws ArgumentException for a backend that is no absolute http(s) URL.
    /// </summary>
    public static WebApplication Build(ProxySettings settings, Action<WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (!settings.Backend.IsAbsoluteUri || settings.Backend.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"the backend must be an absolute http:// or https:// URL, got '{settings.Backend}'", nameof(settings));
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls(settings.Urls);
        builder.WebHost.ConfigureKestrel(o => o.AddServerHeader = false);
        Uring.Perf.TransportSwitch.Apply(builder.WebHost, settings.Engine, settings.Inline, settings.Rings);

        RouteConfig[] routes =
        [
            new() { RouteId = RouteId, ClusterId = ClusterId, Match = new RouteMatch { Path = "{**catch-all}" } },
        ];
        ClusterConfig[] clusters =
        [
            new()
            {
                ClusterId = ClusterId,
                Destinations = new Dictionary<string, DestinationConfig> { ["backend"] = new() { Address = settings.Backend.ToString() } },
            },
        ];
        builder.Services.AddReverseProxy().LoadFromMemory(routes, clusters);
        if (settings.Engine is UringEngine engine)
        {
            // Registered after AddReverseProxy, so it replaces YARP's default factory.
            builder.Services.AddSingleton<IForwarderHttpClientFactory>(new UringForwarderHttpClientFactory(engine));
        }
        configure?.Invoke(builder);

        var app = builder.Build();
        app.MapReverseProxy();
        return app;
    }
}
