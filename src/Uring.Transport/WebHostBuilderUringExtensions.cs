using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Uring.Transport;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Selects the io_uring transport for Kestrel.</summary>
public static class WebHostBuilderUringExtensions
{
    /// <summary>
    /// Makes Kestrel accept, receive and send through the io_uring transport (epoll where io_uring is
    /// unavailable) instead of the Sockets transport. Options come from
    /// <c>services.Configure&lt;UringTransportOptions&gt;(...)</c> or configuration binding.
    /// </summary>
    public static IWebHostBuilder UseUringTransport(this IWebHostBuilder hostBuilder)
    {
        ArgumentNullException.ThrowIfNull(hostBuilder);
        return hostBuilder.ConfigureServices(services =>
        {
            // Kestrel binds with the last registered factory that can bind the endpoint.
            services.AddSingleton<IConnectionListenerFactory, UringTransportFactory>();
            services.AddOptions<UringTransportOptions>().ValidateOnStart();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UringTransportOptions>, UringTransportOptionsValidator>());
        });
    }

    /// <summary>As <see cref="UseUringTransport(IWebHostBuilder)"/>, and configures the transport's options.</summary>
    public static IWebHostBuilder UseUringTransport(this IWebHostBuilder hostBuilder, Action<UringTransportOptions> configureOptions)
    {
        ArgumentNullException.ThrowIfNull(configureOptions);
        return hostBuilder.UseUringTransport().ConfigureServices(services => services.Configure(configureOptions));
    }
}
