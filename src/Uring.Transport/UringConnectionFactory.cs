using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Uring.Transport.Client;
using Uring.Transport.Internal;

namespace Uring.Transport;

/// <summary>
/// Opens outbound connections on the io_uring transport: TCP to an <see cref="IPEndPoint"/> or a
/// <see cref="DnsEndPoint"/> (each resolved address tried in turn) and Unix domain sockets. The
/// connections are the same as the server's: the same pipes, features and close semantics.
/// </summary>
/// <remarks>
/// Connections run on the I/O loops of a server in this process when one runs loops of the engine
/// asked for, otherwise on client loops shared by every factory with the same loop options,
/// started on the first connect and stopped once the last factory using them is disposed.
/// Disposing the factory aborts the connections it opened that are still open.
/// </remarks>
public sealed class UringConnectionFactory : IConnectionFactory, IAsyncDisposable
{
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(10);

    private readonly UringTransportOptions _options;
    private readonly ILogger _logger;
    private readonly TransportEnvironment _environment;
    private readonly CancellationTokenSource _disposing = new();
    private readonly object _gate = new();
    private readonly Dictionary<UringConnection, TaskCompletionSource> _connections = new();
    private Task<IoLoopGroupRegistry.ClientLease>? _lease;
    private int _pendingConnects;
    private TaskCompletionSource? _pendingConnectsDone;
    private bool _disposed;

    /// <summary>Creates the factory (for dependency injection). Invalid options throw <see cref="OptionsValidationException"/> naming the option.</summary>
    public UringConnectionFactory(IOptions<UringTransportOptions> options, ILoggerFactory loggerFactory)
        : this(options, loggerFactory, TransportEnvironment.Default)
    {
    }

    /// <summary>The factory in a test's <paramref name="environment"/>.</summary>
    internal UringConnectionFactory(IOptions<UringTransportOptions> options, ILoggerFactory loggerFactory, TransportEnvironment environment)
        => (_options, _logger, _environment) = FactorySetup.Of(options, loggerFactory, environment);

    /// <summary>Creates the factory with default options and no logging.</summary>
    public UringConnectionFactory()
        : this(new UringTransportOptions())
    {
    }

    /// <summary>Creates the factory with <paramref name="options"/> and no logging.</summary>
    public UringConnectionFactory(UringTransportOptions options)
        : this(Options.Create(options ?? throw new ArgumentNullException(nameof(options))), NullLoggerFactory.Instance)
    {
    }

    /// <summary>The loops of this factory's connections, once the first connect has started them (tests).</summary>
    internal IoLoopGroupRegistry.ClientLease? Lease => _lease is { IsCompletedSuccessfully: true } lease ? lease.Result : null;

    /// <summary>
    /// Connects to <paramref name="endpoint"/>: an <see cref="IPEndPoint"/>, a <see cref="DnsEndPoint"/>
    /// or a <see cref="UnixDomainSocketEndPoint"/>. A refused or unreachable endpoint throws a
    /// <see cref="SocketException"/> whose message names it; the token cancels a
    /// pending connect (<see cref="OperationCanceledException"/>).
    /// </summary>
    /// <param name="endpoint">Where to connect.</param>
    /// <param name="cancellationToken">Cancels the connect while it is pending. Default: none (the connect ends when the kernel's does).</param>
    /// <returns>The open connection; dispose it (or abort it) to close.</returns>
    public async ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!Connector.CanConnect(endpoint))
            throw new NotSupportedException($"The Uring transport cannot connect to a {endpoint.GetType().Name}.");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _pendingConnects++;
        }
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        try
        {
            IoLoopGroupRegistry.ClientLease lease = await GetLeaseAsync().WaitAsync(linked.Token).ConfigureAwait(false);
            UringConnection connection = await Connector.ConnectAsync(lease.Group, endpoint, _options, linked.Token).ConfigureAwait(false);
            if (!Track(connection))
            {
                connection.Abort(new ConnectionAbortedException("The connection factory was disposed."));
                throw Disposed();
            }
            return connection;
        }
        catch (OperationCanceledException e) when (e.CancellationToken != cancellationToken)
        {
            // Cancelled through the linked token: say by whom.
            if (cancellationToken.IsCancellationRequested) throw new OperationCanceledException(e.Message, e, cancellationToken);
            if (_disposing.IsCancellationRequested) throw Disposed();
            throw;
        }
        finally
        {
            lock (_gate)
                if (--_pendingConnects == 0) _pendingConnectsDone?.TrySetResult();
        }
    }

    private Task<IoLoopGroupRegistry.ClientLease> GetLeaseAsync()
    {
        lock (_gate)
        {
            // A failed start is not kept: the next connect tries again.
            if (_lease is null || _lease.IsFaulted || _lease.IsCanceled)
                _lease = _environment.Registry.AcquireClientAsync(_options, _logger, _environment, CancellationToken.None).AsTask();
            return _lease;
        }
    }

    /// <summary>Remembers an open connection until its receive side ends (it then closes on its own); false once disposed.</summary>
    private bool Track(UringConnection connection)
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_disposed) return false;
            _connections.Add(connection, closed);
        }
        connection.ConnectionClosed.UnsafeRegister(static (state, _) =>
        {
            var (factory, connection) = ((UringConnectionFactory, UringConnection))state!;
            lock (factory._gate)
            {
                if (factory._connections.Remove(connection, out TaskCompletionSource? closed))
                    closed.TrySetResult();
            }
        }, (this, connection));
        return true;
    }

    private ObjectDisposedException Disposed() =>
        new(nameof(UringConnectionFactory), "The connection factory was disposed.");

    /// <summary>
    /// Cancels pending connects, aborts every connection this factory opened that is still open
    /// (<see cref="ConnectionAbortedException"/> "The connection factory was disposed."), waits for
    /// them to close (at most 10 s), and releases the loops. Later connects throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        Task pendingConnects;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            if (_pendingConnects == 0)
            {
                pendingConnects = Task.CompletedTask;
            }
            else
            {
                _pendingConnectsDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                pendingConnects = _pendingConnectsDone.Task;
            }
        }
        _disposing.Cancel();
        // Each cancelled connect ends with its final completion, fd closed.
        await pendingConnects.ConfigureAwait(false);

        KeyValuePair<UringConnection, TaskCompletionSource>[] open;
        lock (_gate)
            open = [.. _connections];
        foreach (var (connection, _) in open)
            connection.Abort(new ConnectionAbortedException("The connection factory was disposed."));
        try
        {
            await Task.WhenAll(open.Select(c => c.Value.Task)).WaitAsync(CloseTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            lock (_gate)
                UringLog.FactoryDisposeTimedOut(_logger, _connections.Count, (int)CloseTimeout.TotalSeconds);
        }

        Task<IoLoopGroupRegistry.ClientLease>? lease;
        lock (_gate)
            lease = _lease;
        if (lease is not null)
        {
            try
            {
                await (await lease.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception) when (!lease.IsCompletedSuccessfully)
            {
                // The loops never started: nothing to release.
            }
        }
    }
}
