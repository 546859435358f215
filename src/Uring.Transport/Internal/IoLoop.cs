using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One I/O loop: a dedicated thread that owns one ring, one provided-buffer ring and one table of
/// handlers (connections, acceptors). Only this thread prepares SQEs. Other threads hand it work
/// through <see cref="Schedule"/> (an MPSC queue); the ring's eventfd is written only when the
/// loop is asleep or about to sleep. Each iteration makes one submit-and-wait call.
/// </summary>
internal sealed class IoLoop : PipeScheduler
{
    public const ushort BufferGroup = 0;
    private const int CompletionBatch = 256;

    private readonly ConcurrentQueue<(Action<object?> Callback, object? State)> _work = new();
    private readonly RingEngine _engine;
    private readonly RingOptions _ringOptions;
    private readonly int _bufferCount;
    private readonly int _bufferSize;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<UringConnection> _dirtyInputs = new();

    private ICompletionHandler?[] _handlers = new ICompletionHandler?[64];
    private uint[] _generations = new uint[64];
    private readonly Stack<int> _freeSlots = new();
    private int _nextSlot;
    private int _connectionCount;
    private int _buffersInUse;
    private int _sleeping;
    private volatile bool _stopRequested;
    private IRing? _ring;
    private ProvidedBufferRing? _buffers;

    public IoLoop(int index, RingEngine engine, RingOptions ringOptions, int bufferCount, int bufferSize, ILogger logger)
    {
        Index = index;
        _engine = engine;
        _ringOptions = ringOptions;
        _bufferCount = bufferCount;
        _bufferSize = bufferSize;
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = $"uring-loop-{index}" };
    }

    public int Index { get; }

    public RingEngine Engine => _engine;

    public ILogger Logger => _logger;

    /// <summary>The ring; use only on the loop thread.</summary>
    public IRing Ring => _ring!;

    /// <summary>The provided receive buffers; use only on the loop thread.</summary>
    public ProvidedBufferRing Buffers => _buffers!;

    public bool IsLoopThread => Thread.CurrentThread == _thread;

    /// <summary>Approximate number of open connections, for picking a loop.</summary>
    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    /// <summary>Work items waiting for the loop (for diagnostics).</summary>
    public int QueueLength => _work.Count;

    /// <summary>Provided buffers the kernel filled that are not yet back in the ring (for diagnostics).</summary>
    public int BuffersInUse => Volatile.Read(ref _buffersInUse);

    /// <summary>Gives a provided buffer back to the ring; on the loop thread.</summary>
    public void RecycleBuffer(ushort bufferId)
    {
        _buffers!.Recycle(bufferId);
        Volatile.Write(ref _buffersInUse, _buffersInUse - 1);
    }

    public Task Stopped => _stopped.Task;

    /// <summary>Starts the thread; completes once the ring is set up on it (or faults with the set-up error).</summary>
    public Task StartAsync()
    {
        _thread.Start();
        return _started.Task;
    }

    /// <summary>Asks the loop to finish: it aborts what is left open and exits once every handler is gone.</summary>
    public void RequestStop()
    {
        _stopRequested = true;
        WakeIfSleeping();
    }

    /// <summary>Runs <paramref name="action"/> on the loop thread (queued, never inline).</summary>
    public override void Schedule(Action<object?> action, object? state)
    {
        _work.Enqueue((action, state));
        WakeIfSleeping();
    }

    private void WakeIfSleeping()
    {
        if (Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1)
            _ring?.Wake();
    }

    /// <summary>Takes a slot for <paramref name="handler"/>; returns the slot and its generation.</summary>
    public (int Slot, uint Generation) AddHandler(ICompletionHandler handler)
    {
        int slot;
        if (!_freeSlots.TryPop(out slot))
        {
            slot = _nextSlot++;
            if (slot >= UserData.MaxSlots) throw new InvalidOperationException("Too many handlers on one I/O loop.");
            if (slot == _handlers.Length)
            {
                Array.Resize(ref _handlers, _handlers.Length * 2);
                Array.Resize(ref _generations, _generations.Length * 2);
            }
        }
        _handlers[slot] = handler;
        uint generation = ++_generations[slot];
        if (handler is UringConnection) Interlocked.Increment(ref _connectionCount);
        return (slot, generation);
    }

    /// <summary>Frees a slot; completions still addressed to it are ignored from now on.</summary>
    public void RemoveHandler(int slot)
    {
        if (_handlers[slot] is UringConnection) Interlocked.Decrement(ref _connectionCount);
        _handlers[slot] = null;
        _generations[slot]++;
        _freeSlots.Push(slot);
    }

    /// <summary>Milliseconds (<see cref="Environment.TickCount64"/>) when this batch of completions arrived; loop thread only.</summary>
    public long Now { get; private set; }

    /// <summary>Queues a connection whose input pipe must be flushed once this batch of completions is handled.</summary>
    public void MarkInputDirty(UringConnection connection) => _dirtyInputs.Add(connection);

    private void Run()
    {
        try
        {
            // No wake-up preemption: work handed to a sleeping loop (a response flushed on the thread
            // pool) then accumulates until the producer yields, instead of each hand-off costing two
            // context switches. Measured on one core: about -22% CPU per request, lower p50 and p99.
            int batch = NativeThread.SetBatchScheduling();
            _ring = RingFactory.Create(_engine, _ringOptions);
            _ring.Enable();
            _buffers = new ProvidedBufferRing(BufferGroup, _bufferCount, _bufferSize);
            int r = _ring.RegisterBufferRing(_buffers);
            if (r < 0) throw new RingException("IORING_REGISTER_PBUF_RING", r);
            string detail = _ring is IoUringRing u ? "setup flags " + u.DescribeSetupFlags() : "edge-triggered epoll";
            detail += batch == 0 ? ", SCHED_BATCH" : $", SCHED_BATCH refused ({Errno.Describe(batch)})";
            UringLog.LoopStarted(_logger, Index, _engine, detail);
        }
        catch (Exception e)
        {
            _buffers?.Dispose();
            _ring?.Dispose();
            _started.TrySetException(e);
            _stopped.TrySetResult();
            return;
        }
        _started.TrySetResult();

        try
        {
            Loop();
        }
        finally
        {
            _ring.Dispose(); // the kernel cancels whatever is still in flight
            ReleaseRemainingHandlers();
            _buffers.Dispose();
            _stopped.TrySetResult();
        }
    }

    // Entered once and never left: without this it would run as unoptimized tier-0 code forever.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Loop()
    {
        var completions = new Completion[CompletionBatch];
        long stopDeadline = 0;
        while (true)
        {
            RunWorkItems();

            if (_stopRequested)
            {
                if (stopDeadline == 0)
                {
                    stopDeadline = Environment.TickCount64 + 5000;
                    AbortAll();
                }
                if (LiveHandlers() == 0) return;
                if (Environment.TickCount64 > stopDeadline)
                {
                    UringLog.LoopStopTimedOut(_logger, Index, LiveHandlers(), 5);
                    return;
                }
            }

            int wait = 1;
            int timeout = _stopRequested ? 100 : -1;
            Interlocked.Exchange(ref _sleeping, 1);
            if (!_work.IsEmpty)
                wait = 0;
            int submitted = _ring!.SubmitAndWait(wait, wait == 0 ? 0 : timeout);
            Volatile.Write(ref _sleeping, 0);
            Now = Environment.TickCount64;
            if (submitted < 0)
                UringLog.SubmitFailed(_logger, Index, Errno.Describe(submitted));

            int n;
            while ((n = _ring.DrainCompletions(completions)) > 0)
            {
                for (int i = 0; i < n; i++)
                    Dispatch(in completions[i]);
                if (n < completions.Length) break;
            }
            FlushDirtyInputs();
        }
    }

    private void RunWorkItems()
    {
        // Only what is queued now: work that schedules more work runs next iteration, after a submit.
        for (int count = _work.Count; count > 0 && _work.TryDequeue(out var item); count--)
        {
            try
            {
                item.Callback(item.State);
            }
            catch (Exception e)
            {
                UringLog.WorkItemFailed(_logger, Index, e);
            }
        }
        FlushDirtyInputs();
    }

    private void Dispatch(in Completion completion)
    {
        ulong userData = completion.UserData;
        if (completion.HasBuffer) Volatile.Write(ref _buffersInUse, _buffersInUse + 1);
        int slot = UserData.Slot(userData);
        ICompletionHandler? handler = slot < _nextSlot ? _handlers[slot] : null;
        if (handler is null || _generations[slot] != UserData.Generation(userData))
        {
            // A late completion for a previous owner: only its provided buffer still matters.
            if (completion.HasBuffer) RecycleBuffer(completion.BufferId);
            return;
        }
        try
        {
            handler.OnCompletion(UserData.Kind(userData), in completion);
        }
        catch (Exception e)
        {
            UringLog.HandlerFailed(_logger, Index, e);
            try { handler.OnHandlerFault(e); }
            catch (Exception inner) { UringLog.HandlerFailed(_logger, Index, inner); }
        }
    }

    private void FlushDirtyInputs()
    {
        // Index loop: flushing may mark more connections dirty.
        for (int i = 0; i < _dirtyInputs.Count; i++)
        {
            UringConnection c = _dirtyInputs[i];
            try
            {
                c.FlushInput();
            }
            catch (Exception e)
            {
                UringLog.HandlerFailed(_logger, Index, e);
                c.OnHandlerFault(e);
            }
        }
        _dirtyInputs.Clear();
    }

    /// <summary>
    /// After the ring is gone: whatever did not close in the grace period is closed here, so that
    /// nobody waiting on a connection or an acceptor waits forever.
    /// </summary>
    private void ReleaseRemainingHandlers()
    {
        for (int i = 0; i < _nextSlot; i++)
        {
            ICompletionHandler? handler = _handlers[i];
            if (handler is null) continue;
            _handlers[i] = null;
            try
            {
                handler.OnLoopStopped();
            }
            catch (Exception e)
            {
                UringLog.HandlerFailed(_logger, Index, e);
            }
        }
    }

    private int LiveHandlers()
    {
        int live = 0;
        for (int i = 0; i < _nextSlot; i++)
            if (_handlers[i] is not null) live++;
        return live;
    }

    private void AbortAll()
    {
        for (int i = 0; i < _nextSlot; i++)
        {
            ICompletionHandler? handler = _handlers[i];
            if (handler is null) continue;
            try
            {
                handler.OnLoopStopping();
            }
            catch (Exception e)
            {
                UringLog.HandlerFailed(_logger, Index, e);
            }
        }
    }
}
