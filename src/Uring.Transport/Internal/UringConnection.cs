using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One TCP or Unix connection owned by an <see cref="IoLoop"/>. Receives arrive through a multishot
/// recv with the loop's provided buffers and are copied into the input pipe; the output pipe is
/// drained by one send in flight at a time. All state below the "loop thread only" line is touched
/// only on the loop thread.
/// </summary>
/// <remarks>
/// Close order: cancel what is in flight (by user_data), wait until neither a recv nor a send is
/// in flight, close the fd (FIN, or RST after an abort), then free the slot. Send memory (pipe
/// segments, iovecs) is never released while the kernel may still read it.
/// </remarks>
internal sealed partial class UringConnection : ConnectionContext, ICompletionHandler, IValueTaskSource<int>
{
    private const int MaxIov = 64;

    /// <summary>
    /// A clean FIN within this long of the last data defers <see cref="ConnectionClosed"/> by as
    /// much: the peer may have half-closed after its last request and still wait for the answer,
    /// and Kestrel drops the response once the token fires. An answered request ends the
    /// connection sooner (Kestrel reads the end of input and closes), firing the token at close.
    /// </summary>
    internal const int HalfCloseGraceMilliseconds = 1000;

    private readonly IoLoop _loop;
    private readonly int _fd;
    private readonly int _slot;
    private readonly uint _generation;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly CancellationTokenSource _connectionClosed = new();
    private readonly TaskCompletionSource _closedTask = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _connectionClosedFiredTask = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action _onFlushCompleted;
    private readonly PinnedBlockMemoryPool _pool;

    // Loop thread only.
    private unsafe IoVec* _iov;
    private unsafe MsgHdr* _msg;
    private readonly MemoryHandle[] _pins = new MemoryHandle[MaxIov];
    private int _pinCount;
    private ManualResetValueTaskSourceCore<int> _sendCore;
    private ValueTaskAwaiter<FlushResult> _flushAwaiter;
    private bool _recvArmed;
    private bool _sendInFlight;
    private bool _inputDirty;
    private bool _flushPending;
    private bool _readDone;
    private bool _writeDone;
    private bool _closing;
    private bool _closeSubmitted;
    private bool _aborted;
    private bool _resetOnClose;
    private int _connectionClosedFired;
    private readonly long _eagerFlushBytes;
    private bool _singleShotRecv = true; // the mode the next arm uses; see ArmRecv
    private bool _armedMultishot;        // the kind of the recv in flight
    private bool _recvCancelRequested;
    private Exception? _shutdownReason;
    private long _lastDataTicks = long.MinValue / 2;

    public unsafe UringConnection(IoLoop loop, int fd, EndPoint? localEndPoint, EndPoint? remoteEndPoint,
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
        _input = new Pipe(new PipeOptions(pool, applicationScheduler, loop, maxRead, maxRead / 2, useSynchronizationContext: false));
        _output = new Pipe(new PipeOptions(pool, loop, applicationScheduler, maxWrite, maxWrite / 2, useSynchronizationContext: false));
        Transport = new DuplexPipe(_input.Reader, _output.Writer);

        _onFlushCompleted = OnFlushCompleted;
        _iov = (IoVec*)NativeMemory.Alloc(MaxIov, (nuint)sizeof(IoVec));
        _msg = (MsgHdr*)NativeMemory.AllocZeroed((nuint)sizeof(MsgHdr));
        (_slot, _generation) = loop.AddHandler(this);
    }

    public override string ConnectionId { get; set; }

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _connectionClosed.Token;
        set => throw new NotSupportedException("ConnectionClosed is owned by the transport.");
    }

    public RingEngine Engine => _loop.Engine;

    public int LoopIndex => _loop.Index;

    private ulong Token(OpKind kind) => UserData.Encode(kind, _slot, _generation);

    /// <summary>Starts receiving and sending; on the loop thread, right after the connection is created.</summary>
    /// <param name="accepted">True for a connection a listener accepted (logged here); false for an outbound one.</param>
    public void Start(bool accepted = true)
    {
        if (accepted) UringLog.ConnectionAccepted(_loop.Logger, ConnectionId, _loop.Index, RemoteEndPoint);
        ArmRecv();
        _ = SendLoopAsync();
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        // Kestrel passes null to end a connection gracefully (e.g. after the client's FIN): that
        // closes with FIN; a real reason closes with RST, as Kestrel's Sockets transport does.
        bool reset = abortReason is not null;
        abortReason ??= new ConnectionAbortedException("The connection was closed by the application.");
        _loop.Schedule(static state =>
        {
            var (connection, reason, reset) = ((UringConnection, ConnectionAbortedException, bool))state!;
            connection.AbortOnLoop(reason, reset);
        }, (this, abortReason, reset));
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
            case OpKind.Close:
                OnClosed();
                break;
            // Cancel results need no action: the ops they cancel report for themselves.
        }
    }

    public void OnHandlerFault(Exception error) => AbortOnLoop(new ConnectionAbortedException("The transport failed: " + error.Message, error));

    public void OnLoopStopping() => AbortOnLoop(new ConnectionAbortedException("The transport is stopping."));

    /// <summary>Completes when the fd is closed and the slot released (or the loop stopped).</summary>
    internal Task Closed => _closedTask.Task;

    // ---- receive -------------------------------------------------------------------------------

    private void ArmRecv()
    {
        if (_recvArmed || _readDone || _flushPending || _closing) return;
        // Multishot for request/response traffic, where the socket is drained at each wake-up. For
        // bulk data (a completion filled a whole buffer, or the input pushed back) one buffer per
        // arm: a multishot recv would pour the socket's whole backlog, megabytes on a fast link,
        // into the input in one batch, past MaxReadBufferSize. Back to multishot once a recv finds
        // the socket drained.
        if (_singleShotRecv)
            _loop.Ring.PrepareRecvBufferSelect(_fd, IoLoop.BufferGroup, 0, Token(OpKind.Recv));
        else
            _loop.Ring.PrepareRecvMultishot(_fd, IoLoop.BufferGroup, 0, Token(OpKind.Recv));
        _recvArmed = true;
        _armedMultishot = !_singleShotRecv;
    }

    private void CancelRecv()
    {
        if (!_recvArmed || _recvCancelRequested) return;
        _recvCancelRequested = true;
        _loop.Ring.PrepareCancel(Token(OpKind.Recv), Token(OpKind.Cancel));
    }

    private void OnRecv(in Completion c)
    {
        bool final = !c.HasMore;
        bool fromMultishot = _armedMultishot;
        if (final)
        {
            _recvArmed = false;
            _recvCancelRequested = false;
        }
        int result = c.Result;

        if (result > 0)
        {
            ushort bid = c.BufferId;
            bool fullBuffer = result == _loop.Buffers.BufferSize;
            if (fromMultishot)
            {
                if (fullBuffer)
                {
                    _singleShotRecv = true; // bulk data: end the multishot, go on one buffer at a time
                    CancelRecv();
                }
            }
            else if (!fullBuffer && !_flushPending)
            {
                _singleShotRecv = false; // the socket is drained: back to multishot
            }
            if (!_readDone)
            {
                _lastDataTicks = _loop.Now;
                CopyToInput(_loop.Buffers.GetSpan(bid, result));
                if (_input.Writer.UnflushedBytes >= _eagerFlushBytes)
                {
                    FlushInput();
                }
                else if (!_inputDirty)
                {
                    _inputDirty = true;
                    _loop.MarkInputDirty(this);
                }
            }
            _loop.RecycleBuffer(bid);
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
                case Errno.ENOBUFS: // every buffer was in use: they are back once this batch is handled
                case Errno.ECANCELED: // paused by backpressure, or closing
                    if (_closing) ReadEnded(_shutdownReason);
                    else ArmRecv();
                    break;
                case Errno.ECONNRESET:
                    UringLog.ConnectionReset(_loop.Logger, ConnectionId);
                    ReadEnded(new ConnectionResetException("The connection was reset by the remote peer.", ErrnoException(result)));
                    break;
                default:
                    UringLog.ConnectionError(_loop.Logger, ConnectionId, Errno.Describe(result));
                    ReadEnded(new ConnectionResetException($"Receive failed: {Errno.Describe(result)}.", ErrnoException(result)));
                    break;
            }
        }
        TryClose();
    }

    private void CopyToInput(ReadOnlySpan<byte> data)
    {
        PipeWriter writer = _input.Writer;
        while (!data.IsEmpty)
        {
            Span<byte> destination = writer.GetSpan(1);
            int n = Math.Min(destination.Length, data.Length);
            data.Slice(0, n).CopyTo(destination);
            writer.Advance(n);
            data = data.Slice(n);
        }
    }

    /// <summary>Flushes what this batch of completions received; pauses receiving under backpressure.</summary>
    public void FlushInput()
    {
        _inputDirty = false;
        if (_readDone || _flushPending) return; // a pending flush re-flushes when it completes

        ValueTask<FlushResult> flush = _input.Writer.FlushAsync();
        if (flush.IsCompletedSuccessfully)
        {
            if (flush.Result.IsCompleted) ReaderGone();
            return;
        }

        // MaxReadBufferSize reached: stop receiving until the application has read half of it.
        _flushPending = true;
        _singleShotRecv = true;
        CancelRecv();
        _flushAwaiter = flush.GetAwaiter();
        _flushAwaiter.UnsafeOnCompleted(_onFlushCompleted); // resumes on the loop (the input writer's scheduler)
    }

    private void OnFlushCompleted()
    {
        _flushPending = false;
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
        if (_readDone) return;
        _readDone = true;
        _input.Writer.Complete();
        CancelRecv();
        FireConnectionClosed();
        TryClose();
    }

    private void ReadEnded(Exception? error, bool halfCloseGrace = false)
    {
        if (_readDone) return;
        _readDone = true;
        _input.Writer.Complete(error);
        if (halfCloseGrace)
        {
            Task.Delay(HalfCloseGraceMilliseconds).ContinueWith(static (_, state) => ((UringConnection)state!).FireConnectionClosed(),
                this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        else
        {
            FireConnectionClosed();
        }
        if (error is not null && !_closing)
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
                if (result.IsCanceled) break;

                ReadOnlySequence<byte> buffer = result.Buffer;
                while (!buffer.IsEmpty)
                {
                    int sent = await SendAsync(buffer);
                    if (sent < 0)
                    {
                        error = OnSendFailed(sent);
                        reader.AdvanceTo(buffer.Start);
                        return;
                    }
                    buffer = buffer.Slice(sent);
                    if (_closing)
                    {
                        // Closing for a reason other than our own end of output: send nothing more.
                        reader.AdvanceTo(buffer.Start);
                        return;
                    }
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
                UringLog.ConnectionReset(_loop.Logger, ConnectionId);
                _shutdownReason ??= new ConnectionResetException($"Send failed: {Errno.Describe(result)}.", ErrnoException(result));
                return null;
            default:
                UringLog.ConnectionError(_loop.Logger, ConnectionId, Errno.Describe(result));
                return ErrnoException(result);
        }
    }

    private unsafe ValueTask<int> SendAsync(in ReadOnlySequence<byte> buffer)
    {
        int count = 0;
        foreach (ReadOnlyMemory<byte> segment in buffer)
        {
            if (segment.IsEmpty) continue;
            if (count == MaxIov) break;
            MemoryHandle pin = segment.Pin(); // free for pool blocks: their slabs are pinned
            _pins[count] = pin;
            _iov[count].Base = pin.Pointer;
            _iov[count].Length = (nuint)segment.Length;
            count++;
        }
        _pinCount = count;

        if (count == 1)
        {
            _loop.Ring.PrepareSend(_fd, (byte*)_iov[0].Base, (int)_iov[0].Length, 0, Token(OpKind.Send));
        }
        else
        {
            _msg->Iov = _iov;
            _msg->IovLength = (nuint)count;
            _loop.Ring.PrepareSendMsg(_fd, _msg, 0, Token(OpKind.Send));
        }
        _sendInFlight = true;
        _sendCore.Reset();
        return new ValueTask<int>(this, _sendCore.Version);
    }

    private void OnSend(int result)
    {
        _sendInFlight = false;
        for (int i = 0; i < _pinCount; i++) _pins[i].Dispose();
        _pinCount = 0;
        _sendCore.SetResult(result); // the send loop continues inline, on this thread
        TryClose();
    }

    int IValueTaskSource<int>.GetResult(short token) => _sendCore.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _sendCore.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _sendCore.OnCompleted(continuation, state, token, flags);

    private void WriteEnded(Exception? error)
    {
        _writeDone = true;
        if (error is not null) _shutdownReason ??= error;
        if (_shutdownReason is not null && !_closing)
        {
            // Receiving on a connection that can no longer send serves nobody.
            _closing = true;
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
        if (_closeSubmitted || _aborted) return;
        UringLog.ConnectionAborted(_loop.Logger, ConnectionId, reason.Message);
        _aborted = true;
        _resetOnClose = reset;
        _shutdownReason ??= reason;
        ReadEnded(reason);
        BeginClose();
    }

    /// <summary>Stops both directions: close (FIN, or RST when aborted) once nothing is in flight.</summary>
    private void BeginClose()
    {
        if (!_closing)
        {
            _closing = true;
            if (!_writeDone)
            {
                // Aborted, reset or failed: stop the sender. Pending data cannot be delivered.
                _output.Reader.CancelPendingRead();
            }
            // Cancel by user_data, never by fd: a cancel or shutdown naming the fd can run in a kernel
            // worker after the close, when the number may already belong to another connection.
            // No shutdown either: once nothing is in flight, close itself sends the FIN.
            CancelRecv();
            if (_sendInFlight) _loop.Ring.PrepareCancel(Token(OpKind.Send), Token(OpKind.Cancel));
        }
        TryClose();
    }

    private void TryClose()
    {
        if (!_closing || _closeSubmitted || _recvArmed || _sendInFlight || !_writeDone) return;
        if (!_readDone) ReadEnded(_shutdownReason);
        if (_resetOnClose) NativeSocket.SetLingerZero(_fd); // close sends RST
        _closeSubmitted = true;
        _loop.Ring.PrepareClose(_fd, Token(OpKind.Close));
    }

    private unsafe void OnClosed()
    {
        _loop.RemoveHandler(_slot);
        NativeMemory.Free(_iov);
        NativeMemory.Free(_msg);
        _iov = null;
        _msg = null;
        UringLog.ConnectionClosed(_loop.Logger, ConnectionId);
        FireConnectionClosed();
        _closedTask.TrySetResult(); // continuations run asynchronously, off the loop
    }

    /// <summary>
    /// The loop stopped with this connection still open (its ring is already gone, so no completion
    /// will come): complete everything and close the fd. Native iovec memory is not freed, since
    /// the kernel's ring teardown may still be finishing a send that reads it.
    /// </summary>
    public void OnLoopStopped()
    {
        var reason = new ConnectionAbortedException("The transport stopped before the connection closed.");
        _readDone = true;
        _input.Writer.Complete(reason);
        // A submitted close may or may not have run: never close a number that could be reused.
        if (!_closeSubmitted) NativeSocket.Close(_fd);
        FireConnectionClosed();
        _closedTask.TrySetResult();
    }

    /// <summary>
    /// Fires <see cref="ConnectionClosed"/> once, when receiving ends (as Kestrel's Sockets transport
    /// does: that is how a request learns its client left; after a half-close grace when the FIN
    /// followed data closely) or at close, on the thread pool since the callbacks are application code.
    /// </summary>
    private void FireConnectionClosed()
    {
        if (Interlocked.Exchange(ref _connectionClosedFired, 1) != 0) return;
        ThreadPool.UnsafeQueueUserWorkItem(static c =>
        {
            try
            {
                c._connectionClosed.Cancel();
            }
            finally
            {
                c._connectionClosedFiredTask.TrySetResult();
            }
        }, this, preferLocal: false);
    }

    private static System.Net.Sockets.SocketException ErrnoException(int result) =>
        new((int)Errno.ToSocketError(result), Errno.Describe(result));

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
