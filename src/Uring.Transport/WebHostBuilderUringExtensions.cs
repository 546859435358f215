using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Logging;
using Uring.Transport;
using Uring.Transport.Internal;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Selects the io_uring transport for Kestrel.</summary>
public static class WebHostBuilderUringExtensions
{
    /// <summary>
    /// Makes Kestrel accept, receive and send through the io_uring transport (epoll where io_uring is
    /// unavailable) instead of the Sockets transport. Options are bound from the configuration
    /// section <see cref="UringTransportOptions.ConfigurationSection"/> ("Uring") when present; values
    /// set in code (<c>UseUringTransport(o =&gt; ...)</c>, <c>services.Configure&lt;UringTransportOptions&gt;(...)</c>,
    /// before or after this call) win over configuration.
    /// </summary>
    public static IWebHostBuilder UseUringTransport(this IWebHostBuilder hostBuilder)
    {
        ArgumentNullException.ThrowIfNull(hostBuilder);
        return hostBuilder.ConfigureServices((context, services) =>
        {
            // Kestrel binds with the last registered factory that can bind the endpoint.
            services.AddSingleton<IConnectionListenerFactory, UringTransportFactory>();
            services.AddOptions<UringTransportOptions>().ValidateOnStart();
            // Configuration first of all the configure steps, so that code, registered before or after, wins.
            if (!services.Any(d => d.ServiceType == typeof(IConfigureOptions<UringTransportOptions>) && d.ImplementationInstance is BindFromConfiguration))
                services.Insert(0, ServiceDescriptor.Singleton<IConfigureOptions<UringTransportOptions>>(
                    new BindFromConfiguration(context.Configuration.GetSection(UringTransportOptions.ConfigurationSection))));
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UringTransportOptions>, UringTransportOptionsValidator>());
        });
    }

    /// <summary>As <see cref="UseUringTransport(IWebHostBuilder)"/>, and configures the transport's options.</summary>
    public static IWebHostBuilder UseUringTransport(this IWebHostBuilder hostBuilder, Action<UringTransportOptions> configureOptions)
    {
        ArgumentNullException.ThrowIfNull(configureOptions);
        return hostBuilder.UseUringTransport().ConfigureServices(services => services.Configure(configureOptions));
    }

    /// <summary>As <see cref="UseUringTransport(IWebHostBuilder)"/>, in a test's <paramref name="environment"/>.</summary>
    internal static IWebHostBuilder UseUringTransport(this IWebHostBuilder hostBuilder, TransportEnvironment environment) =>
        hostBuilder.UseUringTransport().ConfigureServices(services =>
        {
            for (int i = services.Count - 1; i >= 0; i--)
                if (services[i].ServiceType == typeof(IConnectionListenerFactory) && services[i].ImplementationType == typeof(UringTransportFactory))
                    services.RemoveAt(i);
            services.AddSingleton<IConnectionListenerFactory>(provider => new UringTransportFactory(
                provider.GetRequiredService<IOptions<UringTransportOptions>>(), provider.GetRequiredService<ILoggerFactory>(), environment));
        });

    /// <summary>Binds the "Uring" section; a value that does not convert, or a key no option has, fails naming the key.</summary>
    private sealed class BindFromConfiguration(IConfiguration section) : IConfigureOptions<UringTransportOptions>
    {
        public void Configure(UringTransportOptions options) => section.Bind(options, b => b.ErrorOnUnknownConfiguration = true);
    }
}
