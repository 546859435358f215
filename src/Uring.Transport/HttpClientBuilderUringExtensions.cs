using Microsoft.Extensions.Logging;
using Uring.Transport;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Makes an <c>IHttpClientFactory</c> client connect through the io_uring transport.</summary>
public static class HttpClientBuilderUringExtensions
{
    /// <summary>
    /// Makes the client's primary handler a <see cref="System.Net.Http.SocketsHttpHandler"/> that
    /// connects through the io_uring transport (see
    /// <see cref="SocketsHttpHandlerUringExtensions.UseUringTransport(System.Net.Http.SocketsHttpHandler, Action{UringTransportOptions}?)"/>).
    /// The handlers the factory rotates share one set of I/O loops. Other <c>UseSocketsHttpHandler</c>
    /// configuration of the same client still applies.
    /// </summary>
    /// <param name="builder">The client's builder.</param>
    /// <param name="configure">Transport options. Default: the defaults of <see cref="UringTransportOptions"/>.</param>
    /// <returns><paramref name="builder"/>.</returns>
    public static IHttpClientBuilder UseUringTransport(this IHttpClientBuilder builder, Action<UringTransportOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.UseSocketsHttpHandler((handler, services) =>
            handler.UseUringTransport(configure, services.GetRequiredService<ILoggerFactory>(), Uring.Transport.Internal.TransportEnvironment.Default));
    }
}
