using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

// Closing: cancel what is in flight by user_data, close the fd once no receive or send result is
// pending (FIN, or RST after an abort; a zero-copy notification may follow, its operation holds the
// pages), then leave the loop and fire ConnectionClosed.
internal sealed partial class UringConnection
{
    private enum CloseState : byte
    {
        Open,
        Closing,         // both directions winding down; closes once no receive or send result is pending
        CloseSubmitted,  // its CloseOperation owns the fd
        Closed,          // the close completed and the connection left its loop
        Dead,            // the loop stopped with this connection open: closed synchronously, no ring any more
    }

    // Loop thread only.
    private CloseState _close;
    private bool _aborted;
    private bool _resetOnClose;
    private Exception? _shutdownReason;

    /// <summary>
    /// Aborts on the loop thread: sending stops, the input completes with <paramref name="reason"/>,
    /// and the close sends RST (or FIN when <paramref name="reset"/> is false). Idempotent; called
    /// again after an operation could not be queued, it asks again for what is still missing.
    /// </summary>
    public void AbortOnLoop(ConnectionAbortedException reason, bool reset = true)
    {
        if (_close >= CloseState.CloseSubmitted) return;
        if (reset) _resetOnClose = true;
        if (!_aborted)
        {
            UringLog.ConnectionAborted(_loop.Logger, ConnectionId, reason.Message);
            Interlocked.Increment(ref _loop.Counters.Aborts);
            _aborted = true;
            _shutdownReason ??= reason;
            ReadEnded(reason);
        }
        BeginClose();
    }

    /// <summary>Stops both directions: close (FIN, or RST when aborted) once nothing is in flight.</summary>
    private void BeginClose()
    {
        if (_close == CloseState.Open)
        {
            _close = CloseState.Closing;
            if (!_outputEnded)
            {
                // Aborted, reset or failed: stop the sender. Pending data cannot be delivered.
                _output.Reader.CancelPendingRead();
            }
        }
        if (_close != CloseState.Closing) return;
        // Cancel by user_data, never by fd: a cancel or shutdown naming the fd can run in a kernel
        // worker after the close, when the number may already belong to another connection.
        // No shutdown either: once nothing is in flight, close itself sends the FIN.
        CancelRecv();
        if (_send == SendState.InFlight && _loop.Operations.Cancel(_sendUserData, this)) _send = SendState.Cancelling;
        TryClose();
    }

    private void TryClose()
    {
        if (_close != CloseState.Closing || _recv != ReceiveState.None || _send != SendState.None || !_outputEnded) return;
        if (_inputState != InputState.Ended) ReadEnded(_shutdownReason);
        if (_resetOnClose) _socket.ResetOnClose(); // close sends RST
        if (!_loop.Operations.Closes.Rent().Start(this, _socket.Fd)) return; // not queued: the fault path asks again
        _socket.HandOver();
        _close = CloseState.CloseSubmitted;
    }

    /// <summary>The kernel closed the fd.</summary>
    public void OnClosed()
    {
        _close = CloseState.Closed;
        _loop.Members.Remove(this);
        FdHeadroom.ConnectionClosed();
        UringLog.ConnectionClosed(_loop.Logger, ConnectionId);
        CompleteClosed();
    }

    // One work item, off the loop: the token fires (if it has not yet), then the close completes.
    private void CompleteClosed() => ThreadPool.UnsafeQueueUserWorkItem(static c =>
    {
        c.FireConnectionClosedNow();
        c._closedTask.TrySetResult();
    }, this, preferLocal: false);

    /// <summary>
    /// The loop is exiting with this connection open: no completion will come. Its operations were
    /// abandoned already (the memory of a send or a direct receive in the kernel retired). The fd is
    /// closed here, with RST, unless a close operation owns it; the pipes complete.
    /// </summary>
    public void OnLoopStopped(string reason)
    {
        if (_close is CloseState.Closed or CloseState.Dead) return;
        _close = CloseState.Dead;
        var error = new ConnectionAbortedException(reason);
        _shutdownReason ??= error;
        _recv = ReceiveState.None;
        if (_inputState != InputState.Ended)
        {
            _inputState = InputState.Ended;
            _inputEndPending = false;
            _input.Writer.Complete(error);
        }
        else
        {
            CompletePendingInputEnd();
        }
        _socket.CloseNow(reset: true); // an abort, as for every connection the stop aborts
        FdHeadroom.ConnectionClosed();  // closed now, or by its close operation as the ring goes
        if (_send != SendState.None)
        {
            _send = SendState.None;
            _sendCore.SetResult(-Errno.ECANCELED); // the send loop ends (inline) and completes the output
        }
        else if (!_outputEnded)
        {
            _output.Reader.CancelPendingRead(); // the send loop ends on the thread pool
        }
        CompleteClosed();
    }

    /// <summary>
    /// Fires <see cref="ConnectionClosed"/> once, when receiving ends (as Kestrel's Sockets transport
    /// does: that is how a request learns its client left; after a half-close grace when the FIN
    /// followed data closely) or at close, on the thread pool since the callbacks are application code.
    /// </summary>
    private void FireConnectionClosed()
    {
        if (Interlocked.CompareExchange(ref _connectionClosedFired, 1, 0) != 0) return;
        ThreadPool.UnsafeQueueUserWorkItem(static c => c.CancelConnectionClosed(), this, preferLocal: false);
    }

    /// <summary>The same, on the calling thread (a thread-pool thread: the callbacks are application code).</summary>
    private void FireConnectionClosedNow()
    {
        if (Interlocked.CompareExchange(ref _connectionClosedFired, 1, 0) != 0) return;
        CancelConnectionClosed();
    }

    private void CancelConnectionClosed()
    {
        try
        {
            _connectionClosed.Cancel();
        }
        catch (Exception e)
        {
            // Application callbacks: one that throws costs nothing but a log line (an unhandled
            // exception here would end the process).
            UringLog.ConnectionClosedCallbackFailed(_loop.Logger, ConnectionId, e);
        }
        finally
        {
            _connectionClosedFiredTask.TrySetResult();
        }
    }
}
