using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// Who runs which <see cref="IoLoopGroup"/> in this process (in one <see cref="TransportEnvironment"/>:
/// the product's is <see cref="TransportEnvironment.Default"/>), so that client connections share loops
/// instead of each starting their own:
/// <list type="bullet">
/// <item>A server (<see cref="UringTransportFactory"/>) publishes its group while it has listeners.
/// A client prefers a published group of the engine it asks for.</item>
/// <item>Otherwise clients share one lazily started group per loop configuration.</item>
/// <item>Clients hold a <see cref="ClientLease"/>. A group stops only once no server holds it and
/// its last lease is gone, so a server stopping never pulls loops from under client connections.</item>
/// </list>
/// </summary>
internal sealed class IoLoopGroupRegistry
{
    private readonly object _gate = new();
    private readonly List<Entry> _servers = new(); // published server groups, oldest first
    private readonly Dictionary<ClientGroupKey, Entry> _clients = new();

    /// <summary>Starts a server's group and publishes it until <see cref="ReleaseServerGroupAsync"/>.</summary>
    public async Task<IoLoopGroup> StartServerGroupAsync(UringTransportOptions options, ILogger logger, TransportEnvironment environment)
    {
        IoLoopGroup group = await IoLoopGroup.StartAsync(options, logger, environment).ConfigureAwait(false);
        lock (_gate)
            _servers.Add(new Entry(Task.FromResult(group), key: null) { ServerHolds = true });
        return group;
    }

    /// <summary>
    /// The server is done with <paramref name="group"/>: it is no longer offered to clients, and it
    /// stops now, or when the last client lease on it is released.
    /// </summary>
    public Task ReleaseServerGroupAsync(IoLoopGroup group)
    {
        lock (_gate)
        {
            int index = _servers.FindIndex(e => e.Group == group);
            if (index >= 0)
            {
                Entry entry = _servers[index];
                _servers.RemoveAt(index);
                entry.ServerHolds = false;
                if (entry.Leases > 0) return Task.CompletedTask; // the last lease stops it
            }
        }
        return group.StopAsync();
    }

    /// <summary>
    /// A lease on a running group for client connections: a published server group of the engine
    /// <paramref name="options"/> asks for, else the shared client group for these options (started
    /// on first use). Dispose the lease once its connections are closed.
    /// </summary>
    public async ValueTask<ClientLease> AcquireClientAsync(UringTransportOptions options, ILogger logger, TransportEnvironment environment, CancellationToken cancellationToken)
    {
        UringEngine requested = EngineSelector.Requested(options.Engine, out _);
        Entry? entry;
        TaskCompletionSource<IoLoopGroup>? start = null;
        lock (_gate)
        {
            entry = FindServerGroup(requested);
            if (entry is null)
            {
                var key = ClientGroupKey.For(options, requested);
                if (!_clients.TryGetValue(key, out entry))
                {
                    start = new TaskCompletionSource<IoLoopGroup>(TaskCreationOptions.RunContinuationsAsynchronously);
                    entry = new Entry(start.Task, key);
                    _clients.Add(key, entry);
                }
            }
            entry.Leases++;
        }
        if (start is not null)
            _ = StartClientGroupAsync(entry, start, options, logger, environment);

        IoLoopGroup group;
        try
        {
            group = await entry.Started.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await ReleaseAsync(entry).ConfigureAwait(false);
            throw;
        }
        return new ClientLease(group, sharedWithServer: entry.Key is null, () => ReleaseAsync(entry));
    }

    private async Task StartClientGroupAsync(Entry entry, TaskCompletionSource<IoLoopGroup> start, UringTransportOptions options, ILogger logger,
        TransportEnvironment environment)
    {
        try
        {
            IoLoopGroup group = await IoLoopGroup.StartAsync(options, logger, environment).ConfigureAwait(false);
            UringLog.ClientLoopsStarted(logger, group.Selection.Engine, group.Loops.Length);
            start.SetResult(group);
        }
        catch (Exception e)
        {
            // Not offered again: the next client tries a fresh start.
            lock (_gate)
                if (_clients.TryGetValue(entry.Key!, out Entry? current) && current == entry)
                    _clients.Remove(entry.Key!);
            start.SetException(e);
        }
    }

    private Entry? FindServerGroup(UringEngine requested)
    {
        // Newest first: an older server may be about to stop.
        for (int i = _servers.Count - 1; i >= 0; i--)
        {
            Entry entry = _servers[i];
            if (requested == UringEngine.Auto || entry.Group!.Selection.Engine == requested)
                return entry;
        }
        return null;
    }

    private async Task ReleaseAsync(Entry entry)
    {
        lock (_gate)
        {
            if (--entry.Leases > 0 || entry.ServerHolds) return;
            if (entry.Key is not null && _clients.TryGetValue(entry.Key, out Entry? current) && current == entry)
                _clients.Remove(entry.Key);
        }
        IoLoopGroup group;
        try
        {
            group = await entry.Started.ConfigureAwait(false); // a lease given up while the group was starting
        }
        catch
        {
            return; // it never started: nothing to stop
        }
        await group.StopAsync().ConfigureAwait(false);
    }

    /// <summary>A running (or starting) group and who holds it. Guarded by the registry's lock.</summary>
    private sealed class Entry(Task<IoLoopGroup> started, ClientGroupKey? key)
    {
        public Task<IoLoopGroup> Started { get; } = started;

        /// <summary>The shared client group's key; null for a server's group.</summary>
        public ClientGroupKey? Key { get; } = key;

        public IoLoopGroup? Group => Started.IsCompletedSuccessfully ? Started.Result : null;

        public int Leases { get; set; }

        public bool ServerHolds { get; set; }
    }

    /// <summary>
    /// The options that shape a group's loops (engine, rings, buffers, CPUs, kernel features, zero-copy):
    /// clients with equal keys share one. Connection limits and scheduling are per connection
    /// (<see cref="IoLoopGroup.ConnectionOptionsFor"/>), not part of the key.
    /// </summary>
    private sealed record ClientGroupKey(
        UringEngine Engine, int RingCount, int RingEntries, int ProvidedBufferSize, int ProvidedBufferCount, LoopAffinity LoopAffinity,
        string DisabledKernelFeatures, int ZeroCopySendThreshold)
    {
        public static ClientGroupKey For(UringTransportOptions o, UringEngine requested) =>
            new(requested, o.RingCount, o.RingEntries, o.ProvidedBufferSize, o.ProvidedBufferCount, o.LoopAffinity,
                string.Join(',', KernelProbe.Names(EngineSelector.ParseFeatures(o.DisabledKernelFeatures))), o.ZeroCopySendThreshold);
    }

    /// <summary>A client's hold on a running group; disposing it releases the hold once.</summary>
    public sealed class ClientLease : IAsyncDisposable
    {
        private readonly Func<Task> _release;
        private int _released;

        public ClientLease(IoLoopGroup group, bool sharedWithServer, Func<Task> release)
        {
            Group = group;
            SharedWithServer = sharedWithServer;
            _release = release;
        }

        public IoLoopGroup Group { get; }

        /// <summary>True when the group is a server's (it was published when the lease was taken).</summary>
        public bool SharedWithServer { get; }

        public ValueTask DisposeAsync() =>
            Interlocked.Exchange(ref _released, 1) == 0 ? new ValueTask(_release()) : ValueTask.CompletedTask;
    }
}
