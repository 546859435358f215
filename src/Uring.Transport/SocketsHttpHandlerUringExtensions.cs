using System.Net.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Uring.Transport.Client;
using Uring.Transport.Internal;

namespace Uring.Transport;

/// <summary>Makes <see cref="SocketsHttpHandler"/> connect through the io_uring transport.</summary>
public static class SocketsHttpHandlerUringExtensions
{
    /// <summary>
    /// Sets <paramref name="handler"/>'s <see cref="SocketsHttpHandler.ConnectCallback"/> so that its
    /// connections are opened, read and written by the io_uring transport (epoll where io_uring is
    /// unavailable). TLS, HTTP/2, proxies and connection pooling stay the handler's own. Connections run
    /// on the loops of a server in this process when one runs loops of the engine asked for, otherwise
    /// on client loops shared by every handler in the process (started with the first connection,
    /// stopped when the last one closes), so handlers may be created as often as needed.
    /// Invalid options throw <see cref="Microsoft.Extensions.Options.OptionsValidationException"/> naming the option.
    /// </summary>
    /// <param name="handler">The handler to configure.</param>
    /// <param name="configure">Transport options (engine, loops, buffer limits, <see cref="UringTransportOptions.NoDelay"/>). Default: the defaults of <see cref="UringTransportOptions"/>.</param>
    /// <returns><paramref name="handler"/>.</returns>
    public static SocketsHttpHandler UseUringTransport(this SocketsHttpHandler handler, Action<UringTransportOptions>? configure = null) =>
        handler.UseUringTransport(configure, NullLoggerFactory.Instance, TransportEnvironment.Default);

    internal static SocketsHttpHandler UseUringTransport(this SocketsHttpHandler handler, Action<UringTransportOptions>? configure, ILoggerFactory loggerFactory,
        TransportEnvironment environment)
    {
        ArgumentNullException.ThrowIfNull(handler);
        var options = new UringTransportOptions();
        configure?.Invoke(options);
        UringTransportOptionsValidator.ThrowIfInvalid(options);
        ILogger logger = loggerFactory.CreateLogger(UringLog.Category);

        // Each connection holds a lease on the loops until it is closed: a handler has no dispose
        // hook to hold one for it.
        handler.ConnectCallback = async (context, cancellationToken) =>
        {
            IoLoopGroupRegistry.ClientLease lease = await environment.Registry.AcquireClientAsync(options, logger, environment, cancellationToken).ConfigureAwait(false);
            try
            {
                UringConnection connection = await Connector.ConnectAsync(lease.Group, context.DnsEndPoint, options, cancellationToken).ConfigureAwait(false);
                return new ConnectionStream(connection, owned: lease);
            }
            catch
            {
                await lease.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        };
        return handler;
    }

    /// <summary>Connects through <paramref name="factory"/>, whose dispose then ends the handler's connections too (tests).</summary>
    internal static SocketsHttpHandler UseUringTransport(this SocketsHttpHandler handler, UringConnectionFactory factory)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentNullException.ThrowIfNull(factory);
        handler.ConnectCallback = async (context, cancellationToken) =>
            new ConnectionStream(await factory.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false), owned: null);
        return handler;
    }
}
