using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One TCP or Unix connection owned by an <see cref="IoLoop"/>. Receives arrive through a multishot
/// recv (single-shot where the kernel lacks it, and for bulk data) with the loop's provided buffers
/// and are copied into the input pipe; the output pipe is drained by one send in flight at a time.
/// All state below the "loop thread only" line is touched only on the loop thread.
/// </summary>
/// <remarks>
/// Three small state machines: what the kernel holds of the receive side (<see cref="RecvOp"/>),
/// why the input is or is not receiving (<see cref="InputState"/>), and the close
/// (<see cref="CloseState"/>). Close order: cancel what is in flight (by user_data), wait until
/// neither a recv nor a send is in the kernel and the send loop has ended, close the fd (FIN, or
/// RST after an abort), then free the slot. Send memory (pipe segments, the iovecs of a
/// <see cref="SendSlot"/>) is never released while the kernel may still read it.
/// </remarks>
internal sealed partial class UringConnection : ConnectionContext, ICompletionHandler, IValueTaskSource<int>
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

    private enum SendOp : byte
    {
        None,
        InFlight,
        Cancelling,  // in flight, and its cancel was asked for
    }

    private enum InputState : byte
    {
        Open,        // receiving whenever no recv is armed
        Paused,      // the input pipe pushed back (MaxReadBufferSize): re-armed once the flush completes
        Starved,     // ENOBUFS: parked on the loop until provided buffers come back
        Ended,       // FIN, error, abort, or the application completed its input
    }

    private enum CloseState : byte
    {
        Open,
        Closing,         // both directions winding down; closes once the kernel holds nothing of ours
        CloseSubmitted,  // IORING_OP_CLOSE prepared or in the kernel
        Closed,          // the close completed and the slot is free
        Dead,            // the loop stopped with this connection open: closed synchronously, no ring any more
    }

    private readonly IoLoop _loop;
    private readonly int _fd;
    private readonly int _slot;
    private readonly uint _generation;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly CancellationTokenSource _connectionClosed = new();
    // Both completed only on thread-pool threads (never the loop's), so their continuations (Kestrel's
    // DisposeAsync above all) run right there, without another hop.
    private readonly TaskCompletionSource _closedTask = new();
    private readonly TaskCompletionSource _connectionClosedFiredTask = new();
    private readonly Action _onFlushCompleted;
    private readonly PinnedBlockMemoryPool _pool;
    private readonly long _eagerFlushBytes;
    private int _connectionClosedFired;

    // Loop thread only.
    private RecvOp _recv;
    private bool _recvMultishot;          // the kind of the recv in the kernel
    private bool _bulk;                   // the next arm is single-shot; see ArmRecv
    private InputState _inputState;
    private bool _inputDirty;             // queued for the loop's end-of-batch flush
    private SendOp _send;
    private bool _outputEnded;            // the send loop has finished
    private CloseState _close;
    private bool _aborted;
    private bool _resetOnClose;
    private SendSlot? _sendSlot;          // lent by the loop while a send is in flight
    private ReadOnlySequence<byte> _sending; // what the send in flight points into
    private ulong _sendToken;             // the send in flight's user_data (for its cancel)
    // Zero-copy sends whose notification has not come, by tag: each slot holds leases on the blocks
    // the kernel may still read, released only at that notification (the pipe may have given the
    // blocks back long before: they return to the pool then). When the loop stops with some still
    // unnotified (OnLoopStopped), their leases are never released: those blocks never return.
    private SendSlot?[]? _zeroCopy;
    private int _zeroCopyPending;
    private bool _zeroCopyOff;            // the kernel copied anyway (loopback): plain sends from now on
    private ManualResetValueTaskSourceCore<int> _sendCore;
    private ValueTaskAwaiter<FlushResult> _flushAwaiter;
    private Exception? _shutdownReason;
    private long _lastDataTicks = long.MinValue / 2;
    private long _closeTicket;            // the ring's ticket of our PrepareClose

    public UringConnection(IoLoop loop, int fd, EndPoint? localEndPoint, EndPoint? remoteEndPoint,
        PinnedBlockMemoryPool pool, PipeScheduler applicationScheduler, long? maxReadBufferSize, long? maxWriteBufferSize)
    {
        _loop = loop;
        _fd = fd;
        _pool = pool;
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = remoteEndPoint;
        ConnectionId = CorrelationId.Next();

        long maxRead = maxReadBufferSize ?? 0;
        long maxWrite = maxWriteBufferSize ?? 0;
        // Under a read limit, flush as soon as half of it is waiting, not only at the end of a batch:
        // a multishot recv can deliver many buffers in one batch, and the limit must hold.
        _eagerFlushBytes = maxRead > 0 ? Math.Max(1, maxRead / 2) : long.MaxValue;
        (PipeOptions inputOptions, PipeOptions outputOptions) = loop.PipeOptionsFor(pool, applicationScheduler, maxRead, maxWrite);
        _input = new Pipe(inputOptions);
        _output = new Pipe(outputOptions);
        Transport = new DuplexPipe(_input.Reader, _output.Writer);

        _onFlushCompleted = OnFlushCompleted;
        (_slot, _generation) = loop.AddHandler(this); // last: a throw leaves nothing registered
    }

    public override string ConnectionId { get; set; }

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _connectionClosed.Token;
        set => throw new NotSupportedException("ConnectionClosed is owned by the transport.");
    }

    public UringEngine Engine => (UringEngine)_loop.Engine;

    public int LoopIndex => _loop.Index;

    /// <summary>The socket's fd (tests read its options).</summary>
    internal int Fd => _fd;

    private ulong Token(OpKind kind) => UserData.Encode(kind, _slot, _generation);

    /// <summary>Starts receiving and sending; on the loop thread, right after the connection is created.</summary>
    /// <param name="accepted">True for a connection a listener accepted (logged here); false for an outbound one.</param>
    public void Start(bool accepted = true)
    {
        if (accepted)
        {
            UringLog.ConnectionAccepted(_loop.Logger, ConnectionId, _loop.Index, RemoteEndPoint);
            Interlocked.Increment(ref _loop.Counters.Accepted);
        }
        ArmRecv();
        _ = SendLoopAsync();
        // Adopted after the loop's stop began (its AbortAll has run): it closes with the rest.
        if (!_loop.IsRunning) OnLoopStopping();
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        // Kestrel passes null to end a connection gracefully (e.g. after the client's FIN): that
        // closes with FIN; a real reason closes with RST, as Kestrel's Sockets transport does.
        bool reset = abortReason is not null;
        abortReason ??= new ConnectionAbortedException("The connection was closed by the application.");
        // If the loop stops first, its teardown closes this connection anyway: nothing to do then.
        _loop.Post(static state =>
        {
            var (connection, reason, reset) = ((UringConnection, ConnectionAbortedException, bool))state!;
            connection.AbortOnLoop(reason, reset);
        }, (this, abortReason, reset), static _ => { });
    }

    public override async ValueTask DisposeAsync()
    {
        // Kestrel is done with both pipes; the send loop sees the output complete and closes.
        _input.Reader.Complete();
        _output.Writer.Complete();
        await _closedTask.Task.ConfigureAwait(false);
        await _connectionClosedFiredTask.Task.ConfigureAwait(false); // never dispose before the token fired
        _connectionClosed.Dispose();
    }

    public void OnCompletion(OpKind kind, in Completion completion)
    {
        switch (kind)
        {
            case OpKind.Recv:
                OnRecv(in completion);
                break;
            case OpKind.Send:
                OnSend(completion.Result);
                break;
            case OpKind.SendZc:
                OnSendZeroCopy(in completion);
                break;
            case OpKind.Close:
                OnClosed();
                break;
            // Cancel results need no action: the ops they cancel report for themselves.
        }
    }

    public void OnHandlerFault(Exception error) => AbortOnLoop(new ConnectionAbortedException("The transport failed: " + error.Message, error));

    public void OnLoopStopping() => AbortOnLoop(new ConnectionAbortedException("The transport is stopping."));

    public bool InKernel => _recv != RecvOp.None || _send != SendOp.None || _zeroCopyPending > 0 || _close == CloseState.CloseSubmitted;

    /// <summary>Completes when the fd is closed and the slot released (or the loop stopped).</summary>
    internal Task Closed => _closedTask.Task;

    // ---- receive -------------------------------------------------------------------------------

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

    // ---- send ----------------------------------------------------------------------------------

    private async Task SendLoopAsync()
    {
        Exception? error = null; // unexpected failures only: a peer that went away is not one
        PipeReader reader = _output.Reader;
        try
        {
            while (true)
            {
                ReadResult result = await reader.ReadAsync();
                if (result.IsCanceled || _close == CloseState.Dead) break;

                ReadOnlySequence<byte> buffer = result.Buffer;
                while (!buffer.IsEmpty)
                {
                    int sent = await SendAsync(buffer);
                    // On these two ends the read is not advanced: Complete (finally) releases it all,
                    // so a flush waiting on backpressure wakes seeing IsCompleted. Advancing first
                    // could wake it as if the output had drained.
                    if (sent < 0)
                    {
                        error = OnSendFailed(sent);
                        return;
                    }
                    buffer = buffer.Slice(sent);
                    if (_close != CloseState.Open) return; // closing for a reason other than our own end of output: send nothing more
                }
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted) break;
            }
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            // As Kestrel's Sockets transport: the output completes with an error only when it was
            // unexpected; resets and aborts reach the application through the input.
            reader.Complete(error);
            WriteEnded(error);
        }
    }

    // Logged and counted (uring.loop.connections.failed) alike for receives and sends.
    private void OnPeerReset()
    {
        UringLog.ConnectionReset(_loop.Logger, ConnectionId);
        Interlocked.Increment(ref _loop.Counters.Resets);
    }

    private void OnUnexpectedErrno(int result)
    {
        UringLog.ConnectionError(_loop.Logger, ConnectionId, Errno.Describe(result));
        Interlocked.Increment(ref _loop.Counters.Errors);
    }

    /// <summary>Classifies a failed send: null for a reset peer or our own cancel, else the unexpected error.</summary>
    private Exception? OnSendFailed(int result)
    {
        switch (-result)
        {
            case Errno.ECANCELED:
                return null;
            case Errno.ECONNRESET:
            case Errno.EPIPE:
            case Errno.ECONNABORTED:
            case Errno.ENOTCONN:
                OnPeerReset();
                _shutdownReason ??= new ConnectionResetException($"Send failed: {Errno.Describe(result)}.", ErrnoException(result));
                return null;
            default:
                OnUnexpectedErrno(result);
                return ErrnoException(result);
        }
    }

    private unsafe ValueTask<int> SendAsync(in ReadOnlySequence<byte> buffer)
    {
        if (_close == CloseState.Dead) return new ValueTask<int>(-Errno.ECANCELED); // no ring any more

        SendSlot slot = _loop.SendSlots.Rent();
        int count = slot.Fill(buffer);
        if (TryZeroCopy(slot, buffer, out int tag))
        {
            _sendToken = UserData.Encode(OpKind.SendZc, _slot, _generation, tag);
            _loop.Ring.PrepareSendMsgZc(_fd, slot.Msg, 0, _sendToken, reportUsage: true);
        }
        else
        {
            _sendToken = Token(OpKind.Send);
            if (count == 1)
                _loop.Ring.PrepareSend(_fd, (byte*)slot.Iov[0].Base, (int)slot.Iov[0].Length, 0, _sendToken);
            else
                _loop.Ring.PrepareSendMsg(_fd, slot.Msg, 0, _sendToken);
            _sendSlot = slot;
        }
        _sending = buffer;
        _send = SendOp.InFlight;
        _sendCore.Reset();
        return new ValueTask<int>(this, _sendCore.Version);
    }

    // A large send goes zero-copy (IORING_OP_SENDMSG_ZC, 6.1) while the kernel has not reported
    // copying it anyway: on loopback it does, and the connection then stays with plain sends; on a
    // real NIC the pages go to the device without a copy. The slot (iovecs, leases) is the
    // notification's to give back.
    private bool TryZeroCopy(SendSlot slot, in ReadOnlySequence<byte> buffer, out int tag)
    {
        tag = 0;
        if (_zeroCopyOff || slot.Bytes < _loop.ZeroCopyThreshold) return false;
        _zeroCopy ??= new SendSlot?[16];
        while (tag < _zeroCopy.Length && _zeroCopy[tag] is not null) tag++;
        if (tag == _zeroCopy.Length || !slot.TryLease(buffer)) return false;
        _zeroCopy[tag] = slot;
        _zeroCopyPending++;
        return true;
    }

    private void OnSendZeroCopy(in Completion c)
    {
        int tag = UserData.Tag(c.UserData);
        if ((c.Flags & CompletionFlags.Notification) != 0)
        {
            ZeroCopyDone(tag, copied: (unchecked((uint)c.Result) & CompletionFlags.ZeroCopyCopied) != 0);
            TryClose();
            return;
        }
        if (!c.HasMore) ZeroCopyDone(tag, copied: false); // it failed before it began: no notification comes
        OnSend(c.Result);
    }

    private void ZeroCopyDone(int tag, bool copied)
    {
        if (_zeroCopy?[tag] is not { } slot) return;
        _zeroCopy[tag] = null;
        _zeroCopyPending--;
        slot.ReleaseLeases();
        _loop.SendSlots.Return(slot);
        if (copied && !_zeroCopyOff && !_loop.KeepZeroCopy)
        {
            _zeroCopyOff = true;
            UringLog.ZeroCopyCopied(_loop.Logger, ConnectionId);
        }
    }

    private void OnSend(int result)
    {
        _send = SendOp.None;
        _sending = default;
        if (_sendSlot is { } slot)
        {
            _sendSlot = null;
            _loop.SendSlots.Return(slot); // the kernel is done with the iovecs and the segments
        }
        _sendCore.SetResult(result); // the send loop continues inline, on this thread
        TryClose();
    }

    int IValueTaskSource<int>.GetResult(short token) => _sendCore.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _sendCore.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _sendCore.OnCompleted(continuation, state, token, flags);

    private void WriteEnded(Exception? error)
    {
        _outputEnded = true;
        if (_close == CloseState.Dead) return;
        if (error is not null) _shutdownReason ??= error;
        if (_shutdownReason is not null && _close == CloseState.Open)
        {
            // Receiving on a connection that can no longer send serves nobody.
            _close = CloseState.Closing;
            CancelRecv();
        }
        BeginClose();
    }

    // ---- close ---------------------------------------------------------------------------------

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
        if (_inputState != InputState.Ended)
        {
            _inputState = InputState.Ended;
            _input.Writer.Complete(error);
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

    private static System.Net.Sockets.SocketException ErrnoException(int result) =>
        new((int)Errno.ToSocketError(result), Errno.Describe(result));

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
