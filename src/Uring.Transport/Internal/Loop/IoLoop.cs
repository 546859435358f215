using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One I/O loop: a dedicated thread that owns one ring and, through it, the loop's operations in
/// the kernel (<see cref="Operations"/>), its members (connections, acceptors, connects), its
/// receive buffers and its send memory. Only this thread prepares SQEs; other threads hand it work
/// (<see cref="Schedule"/>, <see cref="Post"/>) through a <see cref="WorkQueue"/>. Each iteration
/// makes one submit-and-wait call, then handles the batch of completions.
/// </summary>
/// <remarks>
/// Lifetime: Created, Running, Stopping (members aborted and given <see cref="StopGraceMilliseconds"/>
/// to close, then the kernel asked to cancel everything and given <see cref="CancelGraceMilliseconds"/>
/// more), then Stopped; the way out is in IoLoop.Shutdown.cs. Work that arrives once Stopped runs its
/// failure path: an fd handed over is closed, a waiting task is faulted, a pipe continuation runs
/// on the thread pool.
/// </remarks>
internal sealed partial class IoLoop : PipeScheduler
{
    private const int CompletionBatch = 256;
    private const int StopGraceMilliseconds = 5000;
    private const int CancelGraceMilliseconds = 2000;
    private const int FaultAfterFailures = 3; // io_uring_enter failing this many iterations in a row is a loop fault

    private enum LoopState { Created, Running, Stopping, Stopped }

    private readonly LoopSettings _settings;
    private readonly int? _cpu; // the CPU this loop's thread is to be bound to, or null
    private readonly WorkQueue _work = new();
    private readonly Thread _thread;
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _state = (int)LoopState.Created; // LoopState; changed with a full fence (see Enqueue)
    private volatile bool _stopRequested;
    private string? _faultReason;
    private IRing? _ring;
    private long _consumedAtTeardown = -1;

    public IoLoop(int index, LoopSettings settings, ILogger logger, int? cpu = null)
    {
        Index = index;
        _settings = settings;
        _cpu = cpu;
        Logger = logger;
        Members = new LoopMembers(logger, index);
        Operations = new OperationTable(this);
        Buffers = new ReceiveBuffers(settings.BufferCount, settings.BufferSize);
        Sends = new SendOperationPool(() => new SendOperation(this));
        _thread = new Thread(Run) { IsBackground = true, Name = $"uring-loop-{index}" };
    }

    public int Index { get; }

    public UringEngine Engine => _settings.Engine;

    public ILogger Logger { get; }

    public TransportEnvironment Environment => _settings.Environment;

    /// <summary>The ring; loop thread only.</summary>
    public IRing Ring => _ring!;

    /// <summary>The ring's optional features (set once the loop runs).</summary>
    public RingFeatures Features { get; private set; }

    /// <summary>Operations in the kernel, by slot.</summary>
    public OperationTable Operations { get; }

    /// <summary>Connections, acceptors and connects on this loop, and the calls owed to them after a step.</summary>
    public LoopMembers Members { get; }

    /// <summary>Provided receive buffers and the connections waiting for them.</summary>
    public ReceiveBuffers Buffers { get; }

    /// <summary>Send operations (iovecs, msghdr, pins), lent per send.</summary>
    public SendOperationPool Sends { get; }

    /// <summary>Counters of the ring's work (read by the meter; written by the loop thread).</summary>
    public LoopCounters Counters { get; } = new();

    /// <summary>The CPU this loop's thread is bound to, or null; set before <see cref="StartAsync"/> completes.</summary>
    public int? BoundCpu { get; private set; }

    /// <summary>The loop thread's kernel thread id once it runs (0 before).</summary>
    public int OsThreadId { get; private set; }

    /// <summary>
    /// Sends of at least this many bytes go zero-copy (<see cref="UringTransportOptions.ZeroCopySendThreshold"/>);
    /// long.MaxValue where the ring cannot (epoll, kernels before 6.2) or the option is 0.
    /// </summary>
    public long ZeroCopyThreshold { get; private set; } = long.MaxValue;

    /// <summary>Milliseconds (<see cref="System.Environment.TickCount64"/>) when this batch of completions arrived; loop thread only.</summary>
    public long Now { get; private set; }

    /// <summary>True once the ring failed: the loop is gone, the process and other loops are not.</summary>
    public bool Faulted => Volatile.Read(ref _faultReason) is not null;

    /// <summary>False once the loop has stopped or faulted: new connections go to other loops.</summary>
    public bool IsRunning => State == LoopState.Running && !_stopRequested;

    /// <summary>Completes when the loop has stopped and every queued item has run its course.</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>Work items waiting for the loop (diagnostics).</summary>
    public int QueueLength => _work.Count;

    /// <summary>Starts the thread; completes once the ring is set up on it (or faults with the set-up error).</summary>
    public Task StartAsync()
    {
        _thread.Start();
        return _started.Task;
    }

    /// <summary>Asks the loop to finish: it aborts what is left open and exits once every member and operation is gone.</summary>
    public void RequestStop()
    {
        _stopRequested = true;
        Interlocked.MemoryBarrier(); // pairs with the loop's sleep flag: it sees the request, or we see it asleep
        if (State == LoopState.Created)
        {
            // Never started (another loop of the group failed first): nothing will ever run here.
            Exit();
            return;
        }
        if (_work.ClaimWake()) Wake();
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
        bool wake = _work.Add(work); // a full fence: pairs with SetState
        if (State == LoopState.Stopped) _work.DrainAfterStop(WorkFailed); // the loop may have drained before this item landed
        else if (wake) Wake();
    }

    private void Wake()
    {
        Interlocked.Increment(ref Counters.Wakeups);
        _ring?.Wake(); // after the loop exits, Wake does nothing (the eventfd keeps its own lifetime)
    }

    /// <summary>Whether the kernel took the operation prepared with <paramref name="ticket"/> (<see cref="IRing.Prepared"/>): a close it never saw closed nothing.</summary>
    public bool KernelTook(long ticket) => ticket <= (_consumedAtTeardown >= 0 ? _consumedAtTeardown : _ring!.Consumed);

    private void Run()
    {
        try
        {
            OsThreadId = NativeThread.CurrentThreadId();
            (_ring, BoundCpu, string detail) = EngineSelector.OpenRing(_settings, Index, _cpu);
            Features = _ring.Features;
            // Zero-copy sends only where the kernel also says when it copied them anyway (6.2).
            if (_settings.ZeroCopyThreshold > 0 && (Features & RingFeatures.SendZc) != 0) ZeroCopyThreshold = _settings.ZeroCopyThreshold;
            Buffers.Register(_ring);
            UringLog.LoopStarted(Logger, Index, Engine, detail);
        }
        catch (Exception e)
        {
            _ring?.Dispose();
            _started.TrySetException(e);
            Exit();
            return;
        }
        SetState(LoopState.Running);
        _started.TrySetResult();

        try
        {
            Loop();
            FinalSubmit();
        }
        catch (Exception e)
        {
            // Not expected (members' faults are caught per call): end the loop as for a ring fault.
            if (_faultReason is null) Fault($"the I/O loop failed: {e.Message}", e);
        }
        finally
        {
            Teardown();
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
            RunStep();

            if (_stopRequested)
            {
                if (graceDeadline == 0)
                {
                    SetState(LoopState.Stopping);
                    graceDeadline = System.Environment.TickCount64 + StopGraceMilliseconds;
                    Members.ForEach(static m => m.OnLoopStopping());
                }
                if (Members.Count == 0 && Operations.Count == 0) return;
                long now = System.Environment.TickCount64;
                if (cancelDeadline == 0 && now > graceDeadline)
                {
                    // Whatever did not close in the grace: the kernel cancels all of it; the finals still come.
                    UringLog.LoopStopTimedOut(Logger, Index, Members.Count, StopGraceMilliseconds / 1000);
                    CancelEverything();
                    cancelDeadline = now + CancelGraceMilliseconds;
                }
                if (cancelDeadline != 0 && now > cancelDeadline) return;
            }

            // The sleep flag first (a full fence), then what may have arrived: work, or a stop request
            // whose waker saw no sleeper (see WorkQueue).
            _work.EnterSleep();
            int wait = _work.IsEmpty ? 1 : 0;
            int timeout = _stopRequested ? 100 : Sends.HoldsExcess ? (int)SendOperationPool.WindowMilliseconds : -1;
            int submitted = _ring!.SubmitAndWait(wait, wait == 0 ? 0 : timeout);
            _work.LeaveSleep();
            Now = System.Environment.TickCount64;
            Counters.Enters++;
            if (submitted < 0)
            {
                if (++failures == 1) UringLog.SubmitFailed(Logger, Index, Errno.Describe(submitted));
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

            Reap(completions);
            Buffers.EndOfBatch(_ring, Members.Fault);
            Members.RunDeferred();
            Sends.Tick(Now);
        }
    }

    // Handles every completion the ring has now.
    private void Reap(Completion[] completions)
    {
        int n;
        while ((n = _ring!.DrainCompletions(completions)) > 0)
        {
            Counters.Completions += n;
            Counters.Batches++;
            for (int i = 0; i < n; i++)
                Operations.Dispatch(in completions[i]);
            if (n < completions.Length) break;
        }
    }

    // The work items queued now, then what is owed to members after them.
    private void RunStep()
    {
        _work.RunPending(WorkFailed);
        Members.RunDeferred();
    }

    private void WorkFailed(Exception error) => UringLog.WorkItemFailed(Logger, Index, error);

    private LoopState State => (LoopState)Volatile.Read(ref _state);

    // A full fence: a thread that enqueued before this sees Stopped, or this thread's drain sees its item.
    private void SetState(LoopState state) => Interlocked.Exchange(ref _state, (int)state);
}
