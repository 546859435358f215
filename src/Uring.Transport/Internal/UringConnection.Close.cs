using System.Buffers;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

// Closing: cancel what is in flight by user_data, close the fd once the kernel holds nothing of
// ours (FIN, or RST after an abort), then free the slot and fire ConnectionClosed.
internal sealed partial class UringConnection
{
    private enum CloseState : byte
    {
        Open,
        Closing,         // both directions winding down; closes once the kernel holds nothing of ours
        CloseSubmitted,  // IORING_OP_CLOSE prepared or in the kernel
        Closed,          // the close completed and the slot is free
        Dead,            // the loop stopped with this connection open: closed synchronously, no ring any more
    }

    // Loop thread only.
    private CloseState _close;
    private bool _aborted;
    private bool _resetOnClose;
    private Exception? _shutdownReason;
    private long _closeTicket;            // the ring's ticket of our PrepareClose

    /// <summary>
    /// Aborts on the loop thread: sending stops, the input completes with <paramref name="reason"/>,
    /// and the close sends RST (or FIN when <paramref name="reset"/> is false).
    /// </summary>
    public void AbortOnLoop(ConnectionAbortedException reason, bool reset = true)
    {
        if (_close >= CloseState.CloseSubmitted) return;
        if (reset) _resetOnClose = true;
        if (_aborted) return;
        UringLog.ConnectionAborted(_loop.Logger, ConnectionId, reason.Message);
        Interlocked.Increment(ref _loop.Counters.Aborts);
        _aborted = true;
        _shutdownReason ??= reason;
        ReadEnded(reason);
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
        if (_send == SendOp.InFlight)
        {
            _send = SendOp.Cancelling;
            _loop.Ring.PrepareCancel(_sendToken, Token(OpKind.Cancel));
        }
        TryClose();
    }

    private void TryClose()
    {
        if (_close != CloseState.Closing || _recv != RecvOp.None || _send != SendOp.None || !_outputEnded || _zeroCopyPending > 0) return;
        if (_inputState != InputState.Ended) ReadEnded(_shutdownReason);
        if (_resetOnClose) NativeSocket.SetLingerZero(_fd); // close sends RST
        _loop.Ring.PrepareClose(_fd, Token(OpKind.Close));
        _closeTicket = _loop.Ring.Prepared;
        _close = CloseState.CloseSubmitted;
    }

    private void OnClosed()
    {
        _close = CloseState.Closed;
        _loop.RemoveHandler(_slot);
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
    /// The loop is exiting with this connection open: no completion will come. The fd is closed
    /// here (unless a close is already in the kernel), the pipes complete, and memory a send in
    /// flight points into is never reused: its slot stays lent and its pool blocks are retired.
    /// </summary>
    public void OnLoopStopped(string reason)
    {
        if (_close is CloseState.Closed or CloseState.Dead) return;
        // Only a close the kernel took may have closed the fd (and freed its number for reuse).
        bool closeInKernel = _close == CloseState.CloseSubmitted && _loop.KernelTook(_closeTicket);
        _close = CloseState.Dead;
        var error = new ConnectionAbortedException(reason);
        _shutdownReason ??= error;
        if (_recvDirect)
        {
            _pool.Retire(new ReadOnlySequence<byte>(_recvMemory)); // the kernel may still write into it
            _recvDirect = false;
        }
        if (_inputState != InputState.Ended)
        {
            _inputState = InputState.Ended;
            _input.Writer.Complete(error);
        }
        else
        {
            CompletePendingInputEnd();
        }
        _recv = RecvOp.None;
        if (!closeInKernel)
        {
            NativeSocket.SetLingerZero(_fd); // an abort: RST, as for every connection the stop aborts
            NativeSocket.Close(_fd);
        }
        if (_send != SendOp.None)
        {
            _pool.Retire(_sending);  // the kernel may still be reading these blocks
            _sendSlot = null;         // and these iovecs: the slot is never returned
            _send = SendOp.None;
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
