using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

// Receiving: request traffic by a multishot receive (single-shot without the kernel's multishot)
// into the loop's provided buffers, each completion copied into the input pipe and flushed at the
// end of the batch; bulk data by single receives straight into the input pipe's memory, no copy.
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

    private enum ReceiveState : byte
    {
        None,        // nothing in the kernel: the next ArmRecv may arm
        Armed,       // a receive (of _armed's kind) is in the kernel
        Cancelling,  // it is, and its cancel is queued
    }

    /// <summary>
    /// What a receive is: the kind the next arm uses (<see cref="_next"/>) and the kind in the kernel
    /// (<see cref="_armed"/>). Request/response traffic drains the socket at each wake-up: Multishot.
    /// Bulk data (a completion filled a whole provided buffer) goes one receive per arm straight into
    /// the input pipe: Direct (no copy; a multishot receive would pour the socket's whole backlog,
    /// megabytes on a fast link, into the input in one batch, past MaxReadBufferSize). A direct
    /// receive that comes back short, and a resume after backpressure, are followed by one Single
    /// provided-buffer receive, which holds none of this connection's memory while the socket is
    /// quiet: a full buffer means Direct again, less means Multishot (going straight to multishot
    /// measured 12% more CPU on 1 MiB uploads: each return to bulk then costs a cancel). A direct
    /// receive stays armed while the socket is quiet only after one that came back full. Without
    /// multishot receive (before 6.0), Multishot arms as Single.
    /// </summary>
    private enum ReceiveKind : byte
    {
        Multishot,
        Single,
        Direct,
    }

    private enum InputState : byte
    {
        Open,        // receiving whenever no receive is armed
        Paused,      // the input pipe pushed back (MaxReadBufferSize): re-armed once the flush completes
        Starved,     // ENOBUFS: parked on the loop until provided buffers come back
        Ended,       // FIN, error, abort, or the application completed its input
    }

    private readonly Action _onFlushCompleted;

    // Loop thread only.
    private ReceiveState _recv;
    private ReceiveKind _armed;
    private ReceiveKind _next;
    private ulong _recvUserData;          // the receive in the kernel (for its cancel)
    private InputState _inputState;
    private bool _inputDirty;             // queued for the loop's end-of-batch flush
    private ValueTaskAwaiter<FlushResult> _flushAwaiter;
    private long _lastDataTicks = long.MinValue / 2;
    // An end of input asked for while a direct receive holds the pipe's memory: the input writer is
    // completed at that receive's completion (completing it now would give the memory back).
    private bool _inputEndPending;
    private Exception? _inputEndError;

    private bool DirectInKernel => _recv != ReceiveState.None && _armed == ReceiveKind.Direct;

    private void ArmRecv()
    {
        if (_recv != ReceiveState.None || _inputState != InputState.Open || _close != CloseState.Open) return;
        ReceiveKind kind = _next == ReceiveKind.Multishot && (_loop.Features & RingFeatures.MultishotRecv) == 0 ? ReceiveKind.Single : _next;
        ulong userData;
        if (kind == ReceiveKind.Direct)
        {
            // What earlier completions delivered goes to the reader first: no flush may come while
            // the direct receive holds the pipe's memory.
            if (_input.Writer.UnflushedBytes > 0)
            {
                FlushInput();
                if (_inputState != InputState.Open) return; // paused or ended by it
            }
            Memory<byte> memory = _input.Writer.GetMemory(_options.BulkReceive);
            DirectReceiveOperation direct = _loop.Operations.DirectReceives.Rent();
            if (!direct.Start(this, _socket.Fd, memory.Length > _options.BulkReceive ? memory.Slice(0, _options.BulkReceive) : memory)) return;
            userData = direct.UserData;
        }
        else
        {
            ReceiveOperation receive = _loop.Operations.Receives.Rent();
            if (!receive.Start(this, _socket.Fd, multishot: kind == ReceiveKind.Multishot)) return;
            userData = receive.UserData;
        }
        _recv = ReceiveState.Armed;
        _armed = kind;
        _recvUserData = userData;
    }

    private void CancelRecv()
    {
        if (_recv != ReceiveState.Armed || !_loop.Operations.Cancel(_recvUserData, this)) return; // not queued: the fault path asks again
        _recv = ReceiveState.Cancelling;
    }

    /// <summary>Buffers came back after an ENOBUFS: receive again. False when this connection no longer waits.</summary>
    public bool ResumeReceiving()
    {
        if (_inputState != InputState.Starved) return false;
        _inputState = InputState.Open;
        ArmRecv();
        return true;
    }

    /// <summary>
    /// A completion of a provided-buffer receive: data in the buffer it names, lent for this call
    /// (the operation recycles it after), or the end of the stream, or an errno.
    /// </summary>
    public void OnReceived(in Completion completion, bool multishot)
    {
        bool final = !completion.HasMore;
        if (final) _recv = ReceiveState.None;
        int result = completion.Result;
        if (result > 0)
        {
            ReadOnlySpan<byte> data = _loop.Buffers.Span(completion.BufferId, result);
            // Only an open input decides what comes next: after a pause the resume is a Single
            // receive, whatever the completions already on their way say.
            if (_inputState == InputState.Open)
            {
                if (result == _loop.Buffers.BufferSize)
                {
                    _next = ReceiveKind.Direct;
                    if (multishot && !final) CancelRecv();
                }
                else if (_next == ReceiveKind.Single)
                {
                    _next = ReceiveKind.Multishot;
                }
            }
            if (_inputState != InputState.Ended) Deliver(data);
            if (final) ArmRecv();
        }
        else
        {
            ReceiveEnded(result);
        }
        TryClose();
    }

    /// <summary>A direct receive's completion: the memory it held is the pipe's again, with <paramref name="result"/> bytes in it.</summary>
    public void OnReceivedDirect(int result, int asked)
    {
        _recv = ReceiveState.None;
        if (result > 0 && _inputState != InputState.Ended) _input.Writer.Advance(result);
        CompletePendingInputEnd();
        if (result > 0)
        {
            if (_inputState != InputState.Ended)
            {
                _lastDataTicks = _loop.Now;
                // Short: the socket is drained for now (see ReceiveKind).
                if (result < asked) _next = result >= _loop.Buffers.BufferSize ? ReceiveKind.Single : ReceiveKind.Multishot;
                FlushInput();
            }
            ArmRecv();
        }
        else
        {
            ReceiveEnded(result);
        }
        TryClose();
    }

    // A receive came back with the end of the stream (0) or an errno.
    private void ReceiveEnded(int result)
    {
        if (result == 0)
        {
            UringLog.ConnectionReadFin(_loop.Logger, ConnectionId);
            ReadEnded(null, halfCloseGrace: _loop.Now - _lastDataTicks < HalfCloseGraceMilliseconds);
            return;
        }
        switch (-result)
        {
            case Errno.ENOBUFS: // every provided buffer is in use: wait until some come back
                if (_close != CloseState.Open) ReadEnded(_shutdownReason);
                else if (_next == ReceiveKind.Direct) ArmRecv(); // a multishot ended on its way to bulk: the next receive needs no provided buffer
                else if (_inputState == InputState.Open)
                {
                    _inputState = InputState.Starved;
                    _loop.Counters.NoBuffers++;
                    _loop.Buffers.WaitFor(this);
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

    /// <summary>The end of input that waited for a direct receive (<see cref="CompleteInputWriter"/>), if one did.</summary>
    private void CompletePendingInputEnd()
    {
        if (!_inputEndPending) return;
        _inputEndPending = false;
        _input.Writer.Complete(_inputEndError);
        _inputEndError = null;
    }

    /// <summary>Completes the input writer, or at the direct receive's completion while one holds the pipe's memory.</summary>
    private void CompleteInputWriter(Exception? error)
    {
        if (DirectInKernel)
        {
            _inputEndPending = true;
            _inputEndError = error;
            CancelRecv();
            return;
        }
        _input.Writer.Complete(error);
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
        if (writer.UnflushedBytes >= _options.EagerFlushBytes)
        {
            FlushInput();
        }
        else if (!_inputDirty)
        {
            _inputDirty = true;
            _loop.Members.MarkInputDirty(this);
        }
    }

    /// <summary>Flushes what this batch of completions received; pauses receiving under backpressure.</summary>
    public void FlushInput()
    {
        _inputDirty = false;
        if (_inputState is InputState.Ended or InputState.Paused) return; // a pending flush re-flushes when it completes
        if (DirectInKernel) return; // nothing unflushed (flushed before the arm), and a flush now would end the kernel's write

        ValueTask<FlushResult> flush = _input.Writer.FlushAsync();
        if (flush.IsCompletedSuccessfully)
        {
            if (flush.Result.IsCompleted) ReaderGone();
            return;
        }

        // MaxReadBufferSize reached: stop receiving until the application has read half of it (a
        // connection parked on ENOBUFS stops waiting for buffers: the flush's end re-arms it).
        if (_inputState is InputState.Open or InputState.Starved) _inputState = InputState.Paused;
        // Resumed with one Single receive, not a Direct one: the socket may be empty by then, and a
        // direct receive would hold 64 KiB of this connection's for as long as the peer stays quiet.
        _next = ReceiveKind.Single;
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
