using Uring.Native;

namespace Uring.Transport.Internal;

// The way out: a fault, the final submit, and the teardown that gives up what the kernel may still
// hold without freeing any of it.
internal sealed partial class IoLoop
{
    private void Fault(string reason, Exception? error)
    {
        Volatile.Write(ref _faultReason, reason);
        _stopRequested = true;
        SetState(LoopState.Stopping);
        UringLog.LoopFaulted(Logger, Index, reason, Members.Count, error);
    }

    /// <summary>
    /// Submits what was prepared in the last steps (closes above all: an fd whose close is only
    /// prepared is not closed) and handles what comes back at once, until nothing new is prepared.
    /// </summary>
    private void FinalSubmit()
    {
        var completions = new Completion[CompletionBatch];
        for (int round = 0; round < 8 && (round < 2 || _ring!.Consumed < _ring.Prepared || !_work.IsEmpty); round++)
        {
            _ring!.SubmitAndWait(0, 0);
            Reap(completions);
            RunStep();
        }
    }

    // The stop's grace is over: the kernel cancels everything still in flight (where it can: 5.19+).
    private void CancelEverything()
    {
        if ((Features & RingFeatures.CancelAny) == 0) return;
        try
        {
            _ring!.PrepareCancelAll(UserData.Unowned);
        }
        catch (RingException)
        {
            // A full SQ that cannot be flushed: what is left waits out the cancel grace.
        }
    }

    /// <summary>
    /// The loop is done. A failed ring first gives up what is already posted (no enter needed) and
    /// its accepts (synchronously, 6.0+; before, the kernel's asynchronous ring teardown cancels
    /// them). Then: every operation left in the kernel is abandoned, every member told, the receive
    /// buffers freed if nothing was left in the kernel, the ring closed, and work that still arrives
    /// answered with its failure path.
    /// </summary>
    private void Teardown()
    {
        if (_faultReason is not null) ReapAfterFault();
        string reason = _faultReason is null
            ? "The transport stopped before the connection closed."
            : $"The connection's I/O loop failed: {_faultReason}.";
        try { _consumedAtTeardown = _ring!.Consumed; } // before the ring (and its mapped SQ head) goes
        catch (ObjectDisposedException) { _consumedAtTeardown = long.MaxValue; } // unknown: count every close as taken (an fd may leak; none is closed twice)
        bool inKernel = Operations.Count > 0;
        if (Members.Count > 0) UringLog.LoopReleasedHandlers(Logger, Index, Members.Count);
        Operations.AbandonAll();
        Members.ForEach(m => m.OnLoopStopped(reason));
        Members.Clear();
        if (!Buffers.Release(_ring!, inKernel)) UringLog.LoopKeptBuffers(Logger, Index, Buffers.AllocatedBytes);
        Sends.Free(); // spares only: an operation the kernel never finished is not among them
        _ring!.Dispose(); // the kernel cancels whatever is still in flight
        Exit();
    }

    // The ring cannot be entered, but what it already posted can be read: accepted fds above all,
    // which become connections to close rather than fds nobody knows of. Its accepts are cancelled
    // synchronously, so none is left waiting on a listening socket that moves to another loop.
    private void ReapAfterFault()
    {
        var completions = new Completion[CompletionBatch];
        try
        {
            Reap(completions);
            if ((Features & RingFeatures.SyncCancel) != 0)
            {
                foreach (KernelOperation accept in Operations.OfKind(OpKind.Accept))
                {
                    int r = _ring!.CancelSync(accept.UserData, 1000);
                    if (r < 0) UringLog.SyncCancelFailed(Logger, Index, Errno.Describe(r));
                }
                Reap(completions);
            }
            RunStep();
        }
        catch (Exception e)
        {
            UringLog.HandlerFailed(Logger, Index, e);
        }
    }

    private void Exit()
    {
        SetState(LoopState.Stopped);
        _work.DrainAfterStop(WorkFailed);
        _stopped.TrySetResult();
    }
}
