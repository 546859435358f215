using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>The transport's I/O loops (one per <see cref="UringTransportOptions.RingCount"/>) and their shared memory pool.</summary>
internal sealed class IoLoopGroup
{
    private int _next = -1;

    private IoLoopGroup(IoLoop[] loops, PinnedBlockMemoryPool pool, PipeScheduler applicationScheduler, ILogger logger, EngineSelection selection)
    {
        Loops = loops;
        Pool = pool;
        ApplicationScheduler = applicationScheduler;
        Logger = logger;
        Selection = selection;
    }

    public IoLoop[] Loops { get; }

    public PinnedBlockMemoryPool Pool { get; }

    public PipeScheduler ApplicationScheduler { get; }

    public ILogger Logger { get; }

    public EngineSelection Selection { get; }

    /// <summary>The next loop, round-robin, skipping loops that stopped (a faulted one); any loop when none runs.</summary>
    public IoLoop NextLoop()
    {
        IoLoop loop = Loops[0];
        for (int tries = 0; tries < Loops.Length; tries++)
        {
            loop = Loops[(int)((uint)Interlocked.Increment(ref _next) % (uint)Loops.Length)];
            if (loop.IsRunning) break;
        }
        return loop;
    }

    public static async Task<IoLoopGroup> StartAsync(UringTransportOptions options, ILogger logger)
    {
        var ringOptions = new RingOptions
        {
            Engine = (RingEngine)options.Engine,
            Entries = options.RingEntries,
            InjectSetupErrno = options.InjectSetupErrno,
            FeatureLimit = options.FeatureLimit,
        };
        EngineSelection selection = RingFactory.Select(ringOptions);

        var loops = new IoLoop[options.RingCount];
        int[]? cpus = LoopCpus(options.LoopAffinity, options.RingCount);
        for (int i = 0; i < loops.Length; i++)
        {
            int index = i;
            Func<IRing, IRing>? decorate = options.DecorateRing is { } d ? ring => d(ring, index) : null;
            loops[i] = new IoLoop(i, selection.Engine, ringOptions, options.ProvidedBufferCount, options.ProvidedBufferSize, logger, decorate,
                cpus is null ? null : cpus[i % cpus.Length], options.ZeroCopySendThreshold)
            {
                KeepZeroCopy = options.KeepZeroCopy,
            };
        }
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
                "Set UringTransportOptions.Engine (or URING_TRANSPORT_ENGINE) to Auto or Epoll to fall back to epoll.", e);
        }

        string reason = selection.Reason;
        if (selection.Engine == RingEngine.IoUring && !reason.Contains("features", StringComparison.Ordinal))
            reason += $" ({KernelProbe.Current.Describe()})";
        UringLog.EngineSelected(logger, selection.Engine, loops.Length, reason);
        var pool = new PinnedBlockMemoryPool();
        PipeScheduler scheduler = options.UnsafePreferInlineScheduling ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
        var group = new IoLoopGroup(loops, pool, scheduler, logger, selection);
        UringMetrics.Register(group);
        options.GroupStarted?.Invoke(group);
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
