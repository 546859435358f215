using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Uring.Transport.Internal;

namespace Uring.Transport;

/// <summary>
/// Kestrel's listener factory for the io_uring transport: binds TCP (IPv4/IPv6, port 0 included),
/// Unix domain sockets and inherited file handles, and serves them on per-core I/O loops.
/// </summary>
public sealed class UringTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly UringTransportOptions _options;
    private readonly ILogger _logger;
    private readonly TransportEnvironment _environment;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IoLoopGroup? _group;
    private int _listeners;

    /// <summary>Creates the factory. Invalid options throw <see cref="OptionsValidationException"/> naming the option.</summary>
    public UringTransportFactory(IOptions<UringTransportOptions> options, ILoggerFactory loggerFactory)
        : this(options, loggerFactory, TransportEnvironment.Default)
    {
    }

    /// <summary>The factory in a test's <paramref name="environment"/>.</summary>
    internal UringTransportFactory(IOptions<UringTransportOptions> options, ILoggerFactory loggerFactory, TransportEnvironment environment)
        => (_options, _logger, _environment) = FactorySetup.Of(options, loggerFactory, environment);

    /// <inheritdoc />
    public bool CanBind(EndPoint endpoint) => endpoint switch
    {
        IPEndPoint => true,
        UnixDomainSocketEndPoint => true,
        FileHandleEndPoint => true,
        _ => false,
    };

    /// <inheritdoc />
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!CanBind(endpoint))
            throw new NotSupportedException($"The Uring transport cannot bind {endpoint.GetType().Name}.");

        IoLoopGroup group = await AcquireGroupAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var listener = new UringConnectionListener(group, endpoint, _options, ReleaseGroupAsync);
            listener.Bind();
            return listener;
        }
        catch
        {
            await ReleaseGroupAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<IoLoopGroup> AcquireGroupAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Published while it has listeners: client connections in this process use these loops too.
            _group ??= await _environment.Registry.StartServerGroupAsync(_options, _logger, _environment).ConfigureAwait(false);
            _listeners++;
            return _group;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async ValueTask ReleaseGroupAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (--_listeners == 0 && _group is not null)
            {
                IoLoopGroup group = _group;
                _group = null;
                // Stops now, or once the last client connection on these loops is done with them.
                await _environment.Registry.ReleaseServerGroupAsync(group).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }
}
