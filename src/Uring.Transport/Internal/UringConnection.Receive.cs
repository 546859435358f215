using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

// Receiving: a multishot recv (single-shot for bulk data or without the kernel's multishot) into
// the loop's provided buffers, each completion copied into the input pipe and flushed at the end of
// the batch; MaxReadBufferSize pauses it, ENOBUFS parks it until buffers come back.
internal sealed partial class UringConnection
{
    /// <summary>
    /// A clean FIN within this long of the last data defers <see cref="ConnectionClosed"/> by as
    /// much: the peer may have half-closed after its last request and still wait for the answer,
    /// and Kestrel drops the response once the token fires. An answered request ends the
    /// connection sooner (Kestrel reads the end of input and closes), firing the token at close.
    /// </summary>
    internal const int HalfCloseGraceMilliseconds = 1000;

    private enum RecvOp : byte
    {
        None,        // nothing in the kernel: the next ArmRecv may arm
        Armed,       // a recv is in the kernel
        Cancelling,  // a recv is in the kernel and its cancel was asked for
    }

    private enum InputState : byte
    {
        Open,        // receiving whenever no recv is armed
        Paused,      // the input pipe pushed back (MaxReadBufferSize): re-armed once the flush completes
        Starved,     // ENOBUFS: parked on the loop until provided buffers come back
        Ended,       // FIN, error, abort, or the application completed its input
    }

    private readonly Action _onFlushCompleted;
    private readonly long _eagerFlushBytes;

    // Loop thread only.
    private RecvOp _recv;
    private bool _recvMultishot;          // the kind of the recv in the kernel
    private bool _bulk;                   // the next arm is single-shot; see ArmRecv
    private InputState _inputState;
    private bool _inputDirty;             // queued for the loop's end-of-batch flush
    private ValueTaskAwaiter<FlushResult> _flushAwaiter;
    private long _lastDataTicks = long.MinValue / 2;

    private void ArmRecv()
    {
        if (_recv != RecvOp.None || _inputState != InputState.Open || _close != CloseState.Open) return;
        // Multishot for request/response traffic, where the socket is drained at each wake-up. For
        // bulk data (a completion filled a whole buffer, or the input pushed back) one buffer per
        // arm: a multishot recv would pour the socket's whole backlog, megabytes on a fast link,
        // into the input in one batch, past MaxReadBufferSize. Back to multishot once a recv finds
        // the socket drained. Without multishot recv (before 6.0), always one buffer per arm.
        bool multishot = !_bulk && (_loop.Features & RingFeatures.MultishotRecv) != 0;
        if (multishot)
            _loop.Ring.PrepareRecvMultishot(_fd, IoLoop.BufferGroup, 0, Token(OpKind.Recv));
        else
            _loop.Ring.PrepareRecvBufferSelect(_fd, IoLoop.BufferGroup, 0, Token(OpKind.Recv));
        _recv = RecvOp.Armed;
        _recvMultishot = multishot;
    }

    private void CancelRecv()
    {
        if (_recv != RecvOp.Armed) return;
        _recv = RecvOp.Cancelling;
        _loop.Ring.PrepareCancel(Token(OpKind.Recv), Token(OpKind.Cancel));
    }

    /// <summary>Buffers came back after an ENOBUFS: receive again. False when this connection no longer waits.</summary>
    public bool ResumeReceiving()
    {
        if (_inputState != InputState.Starved) return false;
        _inputState = InputState.Open;
        ArmRecv();
        return true;
    }

    private void OnRecv(in Completion c)
    {
        bool final = !c.HasMore;
        bool fromMultishot = _recvMultishot;
        if (final) _recv = RecvOp.None;
        int result = c.Result;

        if (result > 0)
        {
            ushort bid = c.BufferId;
            try
            {
                bool fullBuffer = result == _loop.Buffers.BufferSize;
                if (fromMultishot)
                {
                    if (fullBuffer)
                    {
                        _bulk = true; // bulk data: end the multishot, go on one buffer at a time
                        CancelRecv();
                    }
                }
                else if (!fullBuffer && _inputState == InputState.Open && (_loop.Features & RingFeatures.MultishotRecv) != 0)
                {
                    _bulk = false; // the socket is drained: back to multishot
                }
                if (_inputState != InputState.Ended) Deliver(_loop.Buffers.GetSpan(bid, result));
            }
            finally
            {
                _loop.RecycleBuffer(bid); // also when the copy threw: the buffer is the ring's again
            }
            if (final) ArmRecv();
        }
        else if (result == 0)
        {
            if (c.HasBuffer) _loop.RecycleBuffer(c.BufferId);
            UringLog.ConnectionReadFin(_loop.Logger, ConnectionId);
            ReadEnded(null, halfCloseGrace: _loop.Now - _lastDataTicks < HalfCloseGraceMilliseconds);
        }
        else
        {
            switch (-result)
            {
                case Errno.ENOBUFS: // every provided buffer is in use: wait until some come back
                    if (_close != CloseState.Open) ReadEnded(_shutdownReason);
                    else if (_inputState == InputState.Open)
                    {
                        _inputState = InputState.Starved;
                        _loop.WaitForBuffers(this);
                    }
                    break;
                case Errno.ECANCELED: // paused by backpressure, switched to bulk, or closing
                    if (_close != CloseState.Open) ReadEnded(_shutdownReason);
                    else if (!_loop.IsRunning) OnLoopStopping(); // the stop's cancel-everything
                    else ArmRecv();
                    break;
                case Errno.ECONNRESET:
                    OnPeerReset();
                    ReadEnded(new ConnectionResetException("The connection was reset by the remote peer.", ErrnoException(result)));
                    break;
                default:
                    OnUnexpectedErrno(result);
                    ReadEnded(new ConnectionResetException($"Receive failed: {Errno.Describe(result)}.", ErrnoException(result)));
                    break;
            }
        }
        TryClose();
    }

    private void Deliver(ReadOnlySpan<byte> data)
    {
        _lastDataTicks = _loop.Now;
        PipeWriter writer = _input.Writer;
        while (!data.IsEmpty)
        {
            Span<byte> destination = writer.GetSpan(1);
            int n = Math.Min(destination.Length, data.Length);
            data.Slice(0, n).CopyTo(destination);
            writer.Advance(n);
            data = data.Slice(n);
        }
        if (writer.UnflushedBytes >= _eagerFlushBytes)
        {
            FlushInput();
        }
        else if (!_inputDirty)
        {
            _inputDirty = true;
            _loop.MarkInputDirty(this);
        }
    }

    /// <summary>Flushes what this batch of completions received; pauses receiving under backpressure.</summary>
    public void FlushInput()
    {
        _inputDirty = false;
        if (_inputState is InputState.Ended or InputState.Paused) return; // a pending flush re-flushes when it completes

        ValueTask<FlushResult> flush = _input.Writer.FlushAsync();
        if (flush.IsCompletedSuccessfully)
        {
            if (flush.Result.IsCompleted) ReaderGone();
            return;
        }

        // MaxReadBufferSize reached: stop receiving until the application has read half of it (a
        // connection parked on ENOBUFS stops waiting for buffers: the flush's end re-arms it).
        if (_inputState is InputState.Open or InputState.Starved) _inputState = InputState.Paused;
        _bulk = true;
        CancelRecv();
        _flushAwaiter = flush.GetAwaiter();
        _flushAwaiter.UnsafeOnCompleted(_onFlushCompleted); // resumes on the loop (the input writer's scheduler)
    }

    private void OnFlushCompleted()
    {
        if (_close == CloseState.Dead) return; // resumed on the thread pool after the loop stopped
        if (_inputState == InputState.Paused) _inputState = InputState.Open;
        FlushResult result;
        try
        {
            result = _flushAwaiter.GetResult();
        }
        catch (Exception)
        {
            ReaderGone();
            return;
        }
        _flushAwaiter = default;
        if (result.IsCompleted)
        {
            ReaderGone();
            return;
        }
        if (_input.Writer.UnflushedBytes > 0)
            FlushInput();
        ArmRecv();
    }

    /// <summary>The application completed its input: stop receiving, keep sending.</summary>
    private void ReaderGone()
    {
        if (_inputState == InputState.Ended) return;
        _inputState = InputState.Ended;
        _input.Writer.Complete();
        CancelRecv();
        FireConnectionClosed();
        TryClose();
    }

    private void ReadEnded(Exception? error, bool halfCloseGrace = false)
    {
        if (_inputState == InputState.Ended) return;
        _inputState = InputState.Ended;
        _input.Writer.Complete(error);
        if (halfCloseGrace)
        {
            Task.Delay(HalfCloseGraceMilliseconds).ContinueWith(static (_, state) => ((UringConnection)state!).FireConnectionClosed(),
                this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        else if (_close == CloseState.Open)
        {
            FireConnectionClosed();
        }
        // (Already closing: the token fires with the close's completion, in the same work item.)
        if (error is not null && _close == CloseState.Open)
        {
            // A reset peer cannot take our output either.
            _shutdownReason ??= error;
            BeginClose();
        }
    }
}
