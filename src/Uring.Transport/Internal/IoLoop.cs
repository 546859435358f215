using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One I/O loop: a dedicated thread that owns one ring, one provided-buffer ring and one table of
/// handlers (connections, acceptors, connects). Only this thread prepares SQEs. Other threads hand
/// it work through <see cref="Schedule"/> and <see cref="Post"/> (an MPSC queue); the ring's
/// eventfd is written only when the loop is asleep or about to sleep. Each iteration makes one
/// submit-and-wait call.
/// </summary>
/// <remarks>
/// Lifetime: Created, Running, Stopping (stop requested: handlers are aborted and given
/// <see cref="StopGraceMilliseconds"/> to close, then the kernel is asked to cancel everything and
/// given <see cref="CancelGraceMilliseconds"/> more), then Stopped. On the way out the loop submits
/// what its handlers prepared last, closes synchronously whatever is still open, and frees the
/// receive buffers only when no operation is left in the kernel (otherwise they are kept, and
/// logged). Work that arrives once the loop is Stopped runs its failure path: an fd handed over is
/// closed, a waiting task is faulted, a pipe continuation runs on the thread pool.
/// </remarks>
internal sealed class IoLoop : PipeScheduler
{
    public const ushort BufferGroup = 0;
    private const int CompletionBatch = 256;
    private const int StopGraceMilliseconds = 5000;
    private const int CancelGraceMilliseconds = 2000;
    private const int FaultAfterFailures = 3; // io_uring_enter failing this many iterations in a row is a loop fault
    private const int InitialBuffers = 64;    // provided receive buffers at start; the ring grows by as many when busy

    // user_data of the loop's own cancel-everything at the end of the stop grace; slot 0xFFFFFF is never handed out.
    private static readonly ulong s_cancelAllUserData = UserData.Encode(OpKind.Cancel, UserData.MaxSlots - 1, 0);

    private enum LoopState
    {
        Created,
        Running,
        Stopping,
        Stopped,
    }

    private readonly ConcurrentQueue<LoopWork> _work = new();
    private readonly RingEngine _engine;
    private readonly RingOptions _ringOptions;
    private readonly Func<IRing, IRing>? _decorateRing;
    private readonly int? _cpu; // the CPU this loop's thread is bound to, or null
    private readonly int _bufferCount;
    private readonly int _bufferSize;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<UringConnection> _dirtyInputs = new();
    private readonly Queue<UringConnection> _starved = new(); // waiting for provided buffers (ENOBUFS)

    private ICompletionHandler?[] _handlers = new ICompletionHandler?[64];
    private uint[] _generations = new uint[64];
    private readonly Stack<int> _freeSlots = new();
    private int _nextSlot;
    private int _liveHandlers;
    private int _connectionCount;
    private int _buffersInUse;
    private int _sleeping;
    private int _state = (int)LoopState.Created; // LoopState; changed with a full fence (see Enqueue)
    private volatile bool _stopRequested;
    private string? _faultReason;
    private IRing? _ring;
    private ProvidedBufferRing? _buffers;

    public IoLoop(int index, RingEngine engine, RingOptions ringOptions, int bufferCount, int bufferSize, ILogger logger,
        Func<IRing, IRing>? decorateRing = null, int? cpu = null, int zeroCopyThreshold = 0)
    {
        Index = index;
        _cpu = cpu;
        if (zeroCopyThreshold > 0) ZeroCopyThreshold = zeroCopyThreshold;
        _engine = engine;
        _ringOptions = ringOptions;
        _decorateRing = decorateRing;
        _bufferCount = bufferCount;
        _bufferSize = bufferSize;
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = $"uring-loop-{index}" };
    }

    public int Index { get; }

    /// <summary>The CPU this loop's thread is bound to, or null; set before <see cref="StartAsync"/> completes.</summary>
    public int? BoundCpu { get; private set; }

    public RingEngine Engine => _engine;

    public ILogger Logger => _logger;

    /// <summary>The ring; use only on the loop thread.</summary>
    public IRing Ring => _ring!;

    /// <summary>The ring's optional features (set once the loop runs).</summary>
    public RingFeatures Features { get; private set; }

    /// <summary>The provided receive buffers; use only on the loop thread.</summary>
    public ProvidedBufferRing Buffers => _buffers!;

    /// <summary>The loop thread's kernel thread id once it runs (0 before).</summary>
    public int OsThreadId { get; private set; }

    /// <summary>True once the ring failed (see <see cref="Fault"/>): the loop is gone, the process and other loops are not.</summary>
    public bool Faulted => Volatile.Read(ref _faultReason) is not null;

    /// <summary>False once the loop has stopped or faulted: new connections go to other loops.</summary>
    public bool IsRunning => State == LoopState.Running && !_stopRequested;

    /// <summary>Open connections on this loop (the connections instrument sums them).</summary>
    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    /// <summary>Work items waiting for the loop (for diagnostics).</summary>
    public int QueueLength => _work.Count;

    /// <summary>Provided buffers the kernel filled that are not yet back in the ring (for diagnostics).</summary>
    public int BuffersInUse => Volatile.Read(ref _buffersInUse);

    /// <summary>
    /// The pipe options of this loop's connections: the same for all of them but for the limits, so
    /// one pair per set of limits is made and shared (PipeOptions is immutable). Any thread.
    /// </summary>
    public (PipeOptions Input, PipeOptions Output) PipeOptionsFor(MemoryPool<byte> pool, PipeScheduler application, long maxRead, long maxWrite)
    {
        PipeOptionsPair? cached = _pipeOptions;
        if (cached is not null && cached.Pool == pool && cached.Application == application && cached.MaxRead == maxRead && cached.MaxWrite == maxWrite)
            return (cached.Input, cached.Output);
        cached = new PipeOptionsPair(pool, application, maxRead, maxWrite,
            new PipeOptions(pool, application, this, maxRead, maxRead / 2, useSynchronizationContext: false),
            new PipeOptions(pool, this, application, maxWrite, maxWrite / 2, useSynchronizationContext: false));
        _pipeOptions = cached;
        return (cached.Input, cached.Output);
    }

    private sealed record PipeOptionsPair(MemoryPool<byte> Pool, PipeScheduler Application, long MaxRead, long MaxWrite, PipeOptions Input, PipeOptions Output);

    private volatile PipeOptionsPair? _pipeOptions;

    /// <summary>
    /// Sends of at least this many bytes go zero-copy (<see cref="UringTransportOptions.ZeroCopySendThreshold"/>);
    /// long.MaxValue where the ring cannot (epoll, kernels before 6.2) or the option is 0.
    /// </summary>
    public long ZeroCopyThreshold { get; private set; } = long.MaxValue;

    /// <summary>Test hook: keep sending zero-copy even after the kernel reported copying.</summary>
    public bool KeepZeroCopy { get; init; }

    /// <summary>Spare native send memory (iovecs, msghdr) lent to connections per send; loop thread only.</summary>
    public SendSlotPool SendSlots { get; } = new();

    /// <summary>Counters of the ring's work (read by the meter; written by the loop thread).</summary>
    public LoopCounters Counters { get; } = new();

    /// <summary>Completes when the loop has stopped and every queued item has run its course.</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>Gives a provided buffer back to the ring; on the loop thread.</summary>
    public void RecycleBuffer(ushort bufferId)
    {
        _buffers!.Recycle(bufferId);
        Volatile.Write(ref _buffersInUse, _buffersInUse - 1);
    }

    /// <summary>Bytes of receive-buffer memory this loop has provided so far (for the meter).</summary>
    public long BufferBytes => _buffers?.AllocatedBytes ?? 0;

    private int _buffersTaken; // buffers the completions of this batch carried: the kernel had them all out at once

    // The ring grows a chunk when one batch's completions carried three quarters of its buffers, or a
    // receive found none: memory follows the load (up to ProvidedBufferCount), not the option alone.
    private void GrowBuffers()
    {
        ProvidedBufferRing buffers = _buffers!;
        if (buffers.Provided < _bufferCount && (_buffersTaken * 4 >= buffers.Provided * 3 || _starved.Count > 0))
            buffers.Grow();
        _buffersTaken = 0;
    }

    /// <summary>
    /// Parks <paramref name="connection"/> until receive buffers come back (its recv ended with
    /// ENOBUFS): it is resumed, in arrival order, as buffers are recycled, instead of re-arming
    /// into an empty ring on every iteration.
    /// </summary>
    public void WaitForBuffers(UringConnection connection)
    {
        Counters.NoBuffers++;
        _starved.Enqueue(connection);
    }

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
        Interlocked.MemoryBarrier(); // pairs with the loop's sleep flag: it sees the request, or we see it asleep
        if (State == LoopState.Created)
        {
            // Never started (another loop of the group failed first): nothing will ever run here.
            SetState(LoopState.Stopped);
            DrainAfterStop();
            _stopped.TrySetResult();
            return;
        }
        WakeIfSleeping();
    }

    /// <summary>
    /// PipeScheduler: runs <paramref name="action"/> on the loop thread (queued, never inline). Once
    /// the loop has stopped, on the thread pool instead: these are pipe continuations, and the code
    /// they resume sees its connection's end and finishes without the ring.
    /// </summary>
    public override void Schedule(Action<object?> action, object? state) => Enqueue(new LoopWork(action, state, null));

    /// <summary>
    /// Runs <paramref name="run"/> on the loop thread, or <paramref name="stopped"/> (on whichever
    /// thread) if the loop stops before it could: the work's failure path, which must release what
    /// the work was given (close an fd, fault a task).
    /// </summary>
    public void Post(Action<object?> run, object? state, Action<object?> stopped) => Enqueue(new LoopWork(run, state, stopped));

    private void Enqueue(in LoopWork work)
    {
        _work.Enqueue(work); // a full fence: pairs with the state change and the sleep flag below
        if (State == LoopState.Stopped)
            DrainAfterStop(); // the loop may have drained before this item landed: nobody else will
        else
            WakeIfSleeping();
    }

    private void WakeIfSleeping()
    {
        if (Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1)
        {
            Interlocked.Increment(ref Counters.Wakeups);
            _ring?.Wake(); // after the loop exits, Wake does nothing (the eventfd keeps its own lifetime)
        }
    }

    /// <summary>Test hook: a non-null result makes <see cref="AddHandler"/> throw it (as a full handler table would).</summary>
    internal Func<ICompletionHandler, Exception?>? RejectHandler { get; set; }

    /// <summary>Takes a slot for <paramref name="handler"/>; returns the slot and its generation.</summary>
    /// <exception cref="InvalidOperationException">The loop has 2^24 - 1 handlers already.</exception>
    public (int Slot, uint Generation) AddHandler(ICompletionHandler handler)
    {
        if (RejectHandler?.Invoke(handler) is { } rejection) throw rejection;
        int slot;
        if (!_freeSlots.TryPop(out slot))
        {
            slot = _nextSlot;
            if (slot >= UserData.MaxSlots - 1) throw new InvalidOperationException("Too many handlers on one I/O loop.");
            _nextSlot++;
            if (slot == _handlers.Length)
            {
                Array.Resize(ref _handlers, _handlers.Length * 2);
                Array.Resize(ref _generations, _generations.Length * 2);
            }
        }
        _handlers[slot] = handler;
        uint generation = ++_generations[slot];
        _liveHandlers++;
        if (handler is UringConnection) Interlocked.Increment(ref _connectionCount);
        return (slot, generation);
    }

    /// <summary>How many registered handlers match <paramref name="predicate"/> (diagnostics and tests: a racy snapshot off the loop thread).</summary>
    internal int HandlerCount(Func<ICompletionHandler, bool> predicate)
    {
        ICompletionHandler?[] handlers = _handlers;
        int count = 0;
        for (int i = 0; i < handlers.Length; i++)
            if (handlers[i] is { } h && predicate(h)) count++;
        return count;
    }

    /// <summary>Frees a slot; completions still addressed to it are ignored from now on.</summary>
    public void RemoveHandler(int slot)
    {
        if (_handlers[slot] is null) return;
        if (_handlers[slot] is UringConnection) Interlocked.Decrement(ref _connectionCount);
        _handlers[slot] = null;
        _generations[slot]++;
        _freeSlots.Push(slot);
        _liveHandlers--;
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
            OsThreadId = NativeThread.CurrentThreadId();
            int batch = NativeThread.SetBatchScheduling();
            string pinned = "";
            if (_cpu is int cpu)
            {
                int pin = NativeThread.PinToCpu(cpu);
                if (pin == 0) BoundCpu = cpu;
                pinned = pin == 0 ? $", on CPU {cpu}" : $", CPU {cpu} refused ({Errno.Describe(pin)})";
            }
            IRing ring = RingFactory.Create(_engine, _ringOptions);
            _ring = _decorateRing is null ? ring : _decorateRing(ring);
            _ring.Enable();
            Features = _ring.Features;
            // Zero-copy sends only where the kernel also says when it copied them anyway (6.2).
            const RingFeatures zeroCopy = RingFeatures.SendZc | RingFeatures.SendZcReportUsage;
            if ((Features & zeroCopy) != zeroCopy || !_ring.Supports(IoUringOp.SendMsgZc)) ZeroCopyThreshold = long.MaxValue;
            // A chunk of buffers to begin with; more are provided as receives use them (GrowBuffers).
            _buffers = new ProvidedBufferRing(BufferGroup, _bufferCount, _bufferSize, Math.Min(_bufferCount, InitialBuffers));
            int r = _ring.RegisterBufferRing(_buffers);
            if (r < 0) throw new RingException("IORING_REGISTER_PBUF_RING", r);
            string detail = ring is IoUringRing u ? "setup flags " + u.DescribeSetupFlags() : "edge-triggered epoll";
            detail += batch == 0 ? ", SCHED_BATCH" : $", SCHED_BATCH refused ({Errno.Describe(batch)})";
            detail += pinned;
            UringLog.LoopStarted(_logger, Index, _engine, detail);
        }
        catch (Exception e)
        {
            _buffers?.Dispose();
            _ring?.Dispose();
            SetState(LoopState.Stopped);
            _started.TrySetException(e);
            DrainAfterStop();
            _stopped.TrySetResult();
            return;
        }
        SetState(LoopState.Running);
        _started.TrySetResult();

        bool inKernel = true;
        try
        {
            Loop();
            inKernel = FinalSubmit();
        }
        catch (Exception e)
        {
            // Not expected (handlers' faults are caught per completion): end the loop as for a ring fault.
            if (_faultReason is null) Fault($"the I/O loop failed: {e.Message}", e);
        }
        finally
        {
            Teardown(inKernel);
        }
    }

    // Entered once and never left: without this it would run as unoptimized tier-0 code forever.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Loop()
    {
        var completions = new Completion[CompletionBatch];
        long graceDeadline = 0, cancelDeadline = 0;
        int failures = 0;
        while (true)
        {
            RunWorkItems();

            if (_stopRequested)
            {
                if (graceDeadline == 0)
                {
                    SetState(LoopState.Stopping);
                    graceDeadline = Environment.TickCount64 + StopGraceMilliseconds;
                    AbortAll();
                }
                if (_liveHandlers == 0) return;
                long now = Environment.TickCount64;
                if (cancelDeadline == 0 && now > graceDeadline)
                {
                    // Whatever did not close in the grace: the kernel cancels all of it; the finals still come.
                    UringLog.LoopStopTimedOut(_logger, Index, _liveHandlers, StopGraceMilliseconds / 1000);
                    if ((Features & RingFeatures.CancelAny) != 0) _ring!.PrepareCancelAll(s_cancelAllUserData);
                    cancelDeadline = now + CancelGraceMilliseconds;
                }
                if (cancelDeadline != 0 && now > cancelDeadline) return;
            }

            // The sleep flag first (a full fence), then what may have arrived: work, or a stop request
            // whose waker saw no sleeper. Each side writes, fences, then reads the other's flag.
            Interlocked.Exchange(ref _sleeping, 1);
            int wait = _work.IsEmpty ? 1 : 0;
            int timeout = _stopRequested ? 100 : SendSlots.HoldsExcess ? (int)SendSlotPool.WindowMilliseconds : -1;
            int submitted = _ring!.SubmitAndWait(wait, wait == 0 ? 0 : timeout);
            Volatile.Write(ref _sleeping, 0);
            Now = Environment.TickCount64;
            Counters.Enters++;
            if (submitted < 0)
            {
                if (++failures == 1) UringLog.SubmitFailed(_logger, Index, Errno.Describe(submitted));
                // EBADR: the kernel dropped completions, so some operation will never finish.
                if (submitted == -Errno.EBADR || failures >= FaultAfterFailures)
                {
                    Fault($"io_uring_enter failed {failures} time(s) in a row, last with {Errno.Describe(submitted)}", null);
                    return;
                }
            }
            else
            {
                failures = 0;
                Counters.Submitted += submitted;
            }

            int n;
            while ((n = _ring.DrainCompletions(completions)) > 0)
            {
                Counters.Completions += n;
                Counters.Batches++;
                for (int i = 0; i < n; i++)
                    Dispatch(in completions[i]);
                if (n < completions.Length) break;
            }
            GrowBuffers();
            ResumeStarved();
            FlushDirtyInputs();
            SendSlots.Tick(Now);
        }
    }

    private void Fault(string reason, Exception? error = null)
    {
        Volatile.Write(ref _faultReason, reason);
        _stopRequested = true;
        SetState(LoopState.Stopping);
        UringLog.LoopFaulted(_logger, Index, reason, _liveHandlers, error);
    }

    private void RunWorkItems()
    {
        // Only what is queued now: work that schedules more work runs next iteration, after a submit.
        for (int count = _work.Count; count > 0 && _work.TryDequeue(out LoopWork item); count--)
        {
            try
            {
                item.Run(item.State);
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
        if (completion.HasBuffer)
        {
            Volatile.Write(ref _buffersInUse, _buffersInUse + 1);
            _buffersTaken++;
        }
        int slot = UserData.Slot(userData);
        ICompletionHandler? handler = slot < _nextSlot ? _handlers[slot] : null;
        if (handler is null || _generations[slot] != UserData.Generation(userData))
        {
            // A late completion for a previous owner (or the loop's own cancel): only its provided buffer still matters.
            if (completion.HasBuffer) RecycleBuffer(completion.BufferId);
            return;
        }
        try
        {
            handler.OnCompletion(UserData.Kind(userData), in completion);
        }
        catch (Exception e)
        {
            HandlerFault(handler, e);
        }
    }

    // A handler threw: it ends its own work; whatever its fault path throws is logged, never the loop's end.
    private void HandlerFault(ICompletionHandler handler, Exception error)
    {
        UringLog.HandlerFailed(_logger, Index, error);
        try { handler.OnHandlerFault(error); }
        catch (Exception inner) { UringLog.HandlerFailed(_logger, Index, inner); }
    }

    // Connections parked on ENOBUFS get another recv as buffers come back: at most one per free buffer,
    // in the order they parked. Free is the kernel's own count where it can tell (6.8); otherwise the
    // completions' accounting, exact here: every completion posted so far has just been handled (with
    // DEFER_TASKRUN none is posted between enters), and each one's buffer is already recycled or counted.
    private void ResumeStarved()
    {
        if (_starved.Count == 0) return;
        int free = _ring!.AvailableBuffers(_buffers!);
        if (free < 0) free = _buffers!.Provided - _buffersInUse;
        while (free > 0 && _starved.TryDequeue(out UringConnection? connection))
        {
            try
            {
                if (connection.ResumeReceiving()) free--;
            }
            catch (Exception e)
            {
                HandlerFault(connection, e);
            }
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
                HandlerFault(c, e);
            }
        }
        _dirtyInputs.Clear();
    }

    /// <summary>
    /// Whether the kernel took the operation prepared with <paramref name="ticket"/> (see
    /// <see cref="IRing.Prepared"/>) from the submission queue: a close it never saw closed nothing.
    /// </summary>
    public bool KernelTook(long ticket) => ticket <= (_consumedAtTeardown >= 0 ? _consumedAtTeardown : _ring!.Consumed);

    private long _consumedAtTeardown = -1;

    /// <summary>
    /// Submits what the handlers prepared in their last steps (closes above all: an fd whose close
    /// is only prepared is not closed) and handles what comes back at once, until nothing new is
    /// prepared (a few rounds at most). Returns true when some handler still has an operation in the kernel.
    /// </summary>
    private bool FinalSubmit()
    {
        if (_faultReason is not null) return true; // the ring cannot be trusted: assume the worst
        var completions = new Completion[CompletionBatch];
        for (int round = 0; round < 8 && (round < 2 || _ring!.Consumed < _ring.Prepared || !_work.IsEmpty); round++)
        {
            _ring!.SubmitAndWait(0, 0);
            int n;
            while ((n = _ring.DrainCompletions(completions)) > 0)
                for (int i = 0; i < n; i++)
                    Dispatch(in completions[i]);
            RunWorkItems();
        }
        for (int i = 0; i < _nextSlot; i++)
            if (_handlers[i] is { InKernel: true }) return true;
        return false;
    }

    /// <summary>
    /// The loop is done: close whatever is left (synchronously), release the receive buffers if the
    /// kernel holds nothing any more, close the ring, then answer work that still arrives with its
    /// failure path.
    /// </summary>
    private void Teardown(bool inKernel)
    {
        string reason = _faultReason is null
            ? "The transport stopped before the connection closed."
            : $"The connection's I/O loop failed: {_faultReason}.";
        // What the kernel took, read before the ring (and its mapped SQ head) goes.
        try { _consumedAtTeardown = _ring!.Consumed; }
        catch (ObjectDisposedException) { _consumedAtTeardown = 0; }
        // A failed ring is closed first, so the kernel starts cancelling what it holds (a listener's
        // accept, above all, before the listening socket moves to another loop).
        if (_faultReason is not null) _ring!.Dispose();
        if (_liveHandlers > 0) UringLog.LoopReleasedHandlers(_logger, Index, _liveHandlers);
        for (int i = 0; i < _nextSlot; i++)
        {
            ICompletionHandler? handler = _handlers[i];
            if (handler is null) continue;
            _handlers[i] = null;
            try
            {
                handler.OnLoopStopped(reason);
            }
            catch (Exception e)
            {
                UringLog.HandlerFailed(_logger, Index, e);
            }
        }
        _liveHandlers = 0;
        Interlocked.Exchange(ref _connectionCount, 0);

        if (inKernel)
        {
            // A receive may still be writing into a provided buffer: the memory is kept, never freed or reused.
            UringLog.LoopKeptBuffers(_logger, Index, _buffers!.AllocatedBytes);
        }
        else
        {
            _ring!.UnregisterBufferRing(_buffers!);
            _buffers!.Dispose();
        }
        SendSlots.Free(); // spares only: a slot lent to a send the kernel never finished is not among them
        _ring!.Dispose(); // the kernel cancels whatever is still in flight

        SetState(LoopState.Stopped);
        DrainAfterStop();
        _stopped.TrySetResult();
    }

    private LoopState State => (LoopState)Volatile.Read(ref _state);

    // A full fence: a thread that enqueued before this sees Stopped, or this thread's drain sees its item.
    private void SetState(LoopState state) => Interlocked.Exchange(ref _state, (int)state);

    // Runs the failure path of every queued item. Safe on any thread, concurrently with Enqueue.
    private void DrainAfterStop()
    {
        while (_work.TryDequeue(out LoopWork item))
        {
            try
            {
                if (item.Stopped is { } stopped)
                    stopped(item.State);
                else
                    System.Threading.ThreadPool.UnsafeQueueUserWorkItem(item.Run, item.State, preferLocal: false);
            }
            catch (Exception e)
            {
                UringLog.WorkItemFailed(_logger, Index, e);
            }
        }
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

    /// <summary>One queued piece of work and what to do instead if the loop stops first (null: run it on the thread pool).</summary>
    private readonly record struct LoopWork(Action<object?> Run, object? State, Action<object?>? Stopped);
}

/// <summary>
/// One loop's counters: plain fields written by the loop thread (a wake-up, and the rare
/// per-connection events, with an interlocked add by whichever thread sees them), read without
/// locks by the meter (aligned longs: no torn reads on 64-bit), so the hot path pays one add each.
/// </summary>
internal sealed class LoopCounters
{
    /// <summary>Submit-and-wait calls (io_uring_enter, or epoll_wait rounds).</summary>
    public long Enters;

    /// <summary>Operations submitted.</summary>
    public long Submitted;

    /// <summary>Completions handled.</summary>
    public long Completions;

    /// <summary>Non-empty completion batches (completions per batch = Completions / Batches).</summary>
    public long Batches;

    /// <summary>Eventfd writes that woke the loop.</summary>
    public long Wakeups;

    /// <summary>Receives that found no provided buffer (ENOBUFS).</summary>
    public long NoBuffers;

    /// <summary>Connections a listener accepted onto this loop.</summary>
    public long Accepted;

    /// <summary>Connections the peer reset (ECONNRESET, EPIPE and the like on a receive or send).</summary>
    public long Resets;

    /// <summary>Connections ended by an unexpected receive or send errno.</summary>
    public long Errors;

    /// <summary>Connections aborted by the server (Kestrel or the application).</summary>
    public long Aborts;
}
