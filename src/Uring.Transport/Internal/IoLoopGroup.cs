using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>The transport's I/O loops (one per <see cref="UringTransportOptions.RingCount"/>), their shared memory pool, and what their connections share.</summary>
internal sealed class IoLoopGroup
{
    private readonly object _gate = new();
    private ConnectionOptions[] _connectionOptions = [];
    private int _next = -1;

    private IoLoopGroup(IoLoop[] loops, ILogger logger, EngineSelection selection, TransportEnvironment environment)
    {
        Loops = loops;
        Logger = logger;
        Selection = selection;
        Environment = environment;
    }

    public IoLoop[] Loops { get; }

    public PinnedBlockMemoryPool Pool { get; } = new();

    public ILogger Logger { get; }

    public EngineSelection Selection { get; }

    public TransportEnvironment Environment { get; }

    /// <summary>The next loop, round-robin, skipping loops that stopped (a faulted one); <paramref name="fallback"/> (or any loop) when none runs.</summary>
    public IoLoop NextLoop(IoLoop? fallback = null)
    {
        for (int tries = 0; tries < Loops.Length; tries++)
        {
            IoLoop loop = Loops[(int)((uint)Interlocked.Increment(ref _next) % (uint)Loops.Length)];
            if (loop.IsRunning) return loop;
        }
        return fallback ?? Loops[0];
    }

    /// <summary>
    /// What connections opened with <paramref name="options"/> share on these loops (their pipe
    /// options, built once per loop): one per shape of limits and scheduling, kept for the group's life.
    /// </summary>
    public ConnectionOptions ConnectionOptionsFor(UringTransportOptions options)
    {
        long maxRead = options.MaxReadBufferSize ?? 0, maxWrite = options.MaxWriteBufferSize ?? 0;
        bool inline = options.UnsafePreferInlineScheduling;
        ConnectionOptions[] known = Volatile.Read(ref _connectionOptions);
        foreach (ConnectionOptions c in known)
            if (c.MaxRead == maxRead && c.MaxWrite == maxWrite && c.Inline == inline) return c;
        lock (_gate)
        {
            foreach (ConnectionOptions c in _connectionOptions)
                if (c.MaxRead == maxRead && c.MaxWrite == maxWrite && c.Inline == inline) return c;
            var created = new ConnectionOptions(this, maxRead, maxWrite, inline);
            Volatile.Write(ref _connectionOptions, [.. _connectionOptions, created]);
            return created;
        }
    }

    public static async Task<IoLoopGroup> StartAsync(UringTransportOptions options, ILogger logger, TransportEnvironment environment)
    {
        EngineSelection selection = EngineSelector.Select(options, environment);
        var settings = new LoopSettings(selection.Engine, options.RingEntries, selection.Features, options.ProvidedBufferCount,
            options.ProvidedBufferSize, options.ZeroCopySendThreshold, environment);
        var loops = new IoLoop[options.RingCount];
        int[]? cpus = LoopCpus(options.LoopAffinity, options.RingCount);
        for (int i = 0; i < loops.Length; i++)
            loops[i] = new IoLoop(i, settings, logger, cpus is null ? null : cpus[i % cpus.Length]);
        try
        {
            await Task.WhenAll(loops.Select(l => l.StartAsync())).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            foreach (IoLoop loop in loops) loop.RequestStop();
            await Task.WhenAll(loops.Select(l => l.Stopped)).ConfigureAwait(false);
            throw new InvalidOperationException(
                $"The Uring transport could not start its I/O loops on {selection.Engine} ({selection.Reason}): {e.Message}. " +
                $"Set UringTransportOptions.Engine (or {EngineSelector.EnvironmentVariable}) to Auto or Epoll to fall back to epoll.", e);
        }

        UringLog.EngineSelected(logger, selection.Engine, loops.Length, selection.Reason);
        var group = new IoLoopGroup(loops, logger, selection, environment);
        UringMetrics.Register(group);
        environment.GroupStarted?.Invoke(group);
        return group;
    }

    /// <summary>
    /// The CPUs the loops are bound to, in loop order, or null for none: Pinned binds loop i to the
    /// i-th CPU this process may use (round-robin); Auto does so only when there is exactly one loop
    /// per such CPU, so every CPU gets one loop (and several processes on one machine each put one
    /// loop on every CPU, rather than crowding the first few).
    /// </summary>
    private static int[]? LoopCpus(LoopAffinity affinity, int loops)
    {
        if (affinity == LoopAffinity.None) return null;
        int[] allowed = NativeThread.AllowedCpus();
        if (allowed.Length == 0) return null;
        return affinity == LoopAffinity.Pinned || allowed.Length == loops ? allowed : null;
    }

    /// <summary>Stops every loop once its connections are gone (aborting stragglers after a grace period).</summary>
    public async Task StopAsync()
    {
        foreach (IoLoop loop in Loops) loop.RequestStop();
        await Task.WhenAll(Loops.Select(l => l.Stopped)).ConfigureAwait(false);
        UringMetrics.Unregister(this);
        Pool.Dispose();
    }
}
