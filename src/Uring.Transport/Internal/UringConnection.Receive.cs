using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

// Receiving: a multishot recv (single-shot without the kernel's multishot) into the loop's
// provided buffers, each completion copied into the input pipe and flushed at the end of the batch;
// bulk data instead goes by single-shot recvs straight into the input pipe's memory, no copy.
// MaxReadBufferSize pauses it, ENOBUFS parks it until buffers come back.
internal sealed partial class UringConnection
{
    /// <summary>
    /// A clean FIN within this long of the last data defers <see cref="ConnectionClosed"/> by as
    /// much: the peer may have half-closed after its last request and still wait for the answer,
    /// and Kestrel drops the response once the token fires. An answered request ends the
    /// connection sooner (Kestrel reads the end of input and closes), firing the token at close.
    /// </summary>
    internal const int HalfCloseGraceMilliseconds = 1000;

    /// <summary>Bytes one bulk recv asks for (less under a small MaxReadBufferSize).</summary>
    internal const int BulkReceiveSize = 64 * 1024;

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
    private readonly int _bulkReceiveSize;

    // Loop thread only.
    private RecvOp _recv;
    private bool _recvMultishot;          // the kind of the recv in the kernel
    private bool _bulk;                   // bulk data: the next arm is a direct recv; see ArmRecv
    private InputState _inputState;
    private bool _inputDirty;             // queued for the loop's end-of-batch flush
    private ValueTaskAwaiter<FlushResult> _flushAwaiter;
    private long _lastDataTicks = long.MinValue / 2;

    // A bulk recv's destination: the input pipe's memory (GetMemory, not yet advanced). The kernel
    // owns it from the arm to the recv's completion; until then the input writer is neither flushed
    // (that ends the write, after which the reader may return the segment to the pool) nor completed
    // (that returns every segment): an end of input asked for meanwhile waits in _inputEndPending
    // and happens at the completion. A loop that stops with the recv still in the kernel retires the
    // memory (OnLoopStopped): never rented again.
    private bool _recvDirect;
    private bool _probeSingle;            // the next provided-buffer recv is single-shot (see ArmRecv)
    private Memory<byte> _recvMemory;
    private MemoryHandle _recvPin;
    private bool _inputEndPending;
    private Exception? _inputEndError;

    private void ArmRecv()
    {
        if (_recv != RecvOp.None || _inputState != InputState.Open || _close != CloseState.Open) return;
        // Multishot for request/response traffic, where the socket is drained at each wake-up. Bulk
        // data (a completion filled a whole provided buffer, or the input pushed back) goes one recv
        // per arm straight into the input pipe: no copy, and a multishot recv would pour the socket's
        // whole backlog, megabytes on a fast link, into the input in one batch, past MaxReadBufferSize.
        // A bulk recv that comes back short is followed by one single-shot provided-buffer recv,
        // which holds none of this connection's memory while the socket is quiet: a full buffer
        // means bulk again, less means multishot (going straight to multishot measured 12% more CPU
        // on 1 MiB uploads: each return to bulk then costs a cancel). A direct recv stays armed
        // while the socket is quiet only after one that came back full (the peer stopped at exactly
        // its end). Without multishot recv (before 6.0), single-shot throughout.
        if (_bulk)
        {
            ArmDirectRecv();
            return;
        }
        bool multishot = !_probeSingle && (_loop.Features & RingFeatures.MultishotRecv) != 0;
        if (multishot)
            _loop.Ring.PrepareRecvMultishot(_fd, IoLoop.BufferGroup, 0, Token(OpKind.Recv));
        else
            _loop.Ring.PrepareRecvBufferSelect(_fd, IoLoop.BufferGroup, 0, Token(OpKind.Recv));
        _recv = RecvOp.Armed;
        _recvMultishot = multishot;
    }

    private unsafe void ArmDirectRecv()
    {
        // What earlier completions delivered goes to the reader first: no flush may come between
        // GetMemory and this recv's completion (see _recvMemory).
        if (_input.Writer.UnflushedBytes > 0)
        {
            FlushInput();
            if (_inputState != InputState.Open) return; // paused or ended by it
        }
        Memory<byte> memory = _input.Writer.GetMemory(_bulkReceiveSize);
        if (memory.Length > _bulkReceiveSize) memory = memory.Slice(0, _bulkReceiveSize);
        _recvPin = memory.Pin(); // the pool's memory is pinned already: no GC handle
        _recvMemory = memory;
        _loop.Ring.PrepareRecv(_fd, (byte*)_recvPin.Pointer, memory.Length, 0, Token(OpKind.Recv));
        _recv = RecvOp.Armed;
        _recvMultishot = false;
        _recvDirect = true;
    }

    /// <summary>
    /// A direct recv's final completion: the memory is the pipe's again, with what it received
    /// advanced. Returns how many bytes the recv asked for.
    /// </summary>
    private int EndDirectRecv(int result)
    {
        int asked = _recvMemory.Length;
        _recvDirect = false;
        _recvPin.Dispose();
        _recvPin = default;
        _recvMemory = default;
        if (result > 0 && _inputState != InputState.Ended) _input.Writer.Advance(result);
        CompletePendingInputEnd();
        return asked;
    }

    /// <summary>The end of input that waited for a direct recv (<see cref="CompleteInputWriter"/>), if one did.</summary>
    private void CompletePendingInputEnd()
    {
        if (!_inputEndPending) return;
        _inputEndPending = false;
        _input.Writer.Complete(_inputEndError);
        _inputEndError = null;
    }

    /// <summary>Completes the input writer, or at the direct recv's completion while one holds the pipe's memory.</summary>
    private void CompleteInputWriter(Exception? error)
    {
        if (_recvDirect)
        {
            _inputEndPending = true;
            _inputEndError = error;
            CancelRecv();
            return;
        }
        _input.Writer.Complete(error);
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
        bool direct = _recvDirect;
        if (final) _recv = RecvOp.None;
        int result = c.Result;
        int asked = direct ? EndDirectRecv(result) : 0;

        if (result > 0 && direct)
        {
            if (_inputState != InputState.Ended)
            {
                _lastDataTicks = _loop.Now;
                // Short: the socket is drained for now (see ArmRecv).
                if (result < asked)
                {
                    _bulk = false;
                    _probeSingle = result >= _loop.Buffers.BufferSize;
                }
                FlushInput();
            }
            ArmRecv();
        }
        else if (result > 0)
        {
            ushort bid = c.BufferId;
            try
            {
                if (result == _loop.Buffers.BufferSize)
                {
                    _bulk = true; // bulk data: the next arm receives straight into the input
                    if (fromMultishot) CancelRecv();
                }
                else _probeSingle = false;
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
                    else if (_bulk) ArmRecv(); // a multishot ended on its way to bulk: the next recv needs no provided buffer
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
        if (_recvDirect) return; // nothing unflushed (flushed before the arm), and a flush now would end the kernel's write

        ValueTask<FlushResult> flush = _input.Writer.FlushAsync();
        if (flush.IsCompletedSuccessfully)
        {
            if (flush.Result.IsCompleted) ReaderGone();
            return;
        }

        // MaxReadBufferSize reached: stop receiving until the application has read half of it (a
        // connection parked on ENOBUFS stops waiting for buffers: the flush's end re-arms it).
        if (_inputState is InputState.Open or InputState.Starved) _inputState = InputState.Paused;
        // Resumed with one single-shot provided-buffer recv, not a direct one: the socket may be
        // empty by then, and a direct recv would hold 64 KiB of this connection's for as long as the
        // peer stays quiet. A full buffer then means bulk again.
        _bulk = false;
        _probeSingle = true;
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
        CompleteInputWriter(null);
        CancelRecv();
        FireConnectionClosed();
        TryClose();
    }

    private void ReadEnded(Exception? error, bool halfCloseGrace = false)
    {
        if (_inputState == InputState.Ended) return;
        _inputState = InputState.Ended;
        CompleteInputWriter(error);
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
