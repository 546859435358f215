using System.IO.Pipelines;
using System.Net;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One TCP or Unix connection owned by an <see cref="IoLoop"/>. Receives arrive through a multishot
/// recv (single-shot where the kernel lacks it) with the loop's provided buffers and are copied into
/// the input pipe; bulk data is received straight into the input pipe's memory. The output pipe is
/// drained by one send in flight at a time.
/// State under a "loop thread only" line is touched only on the loop thread.
/// </summary>
/// <remarks>
/// Four small state machines, one file each: what the kernel holds of the receive side
/// (<see cref="RecvOp"/>) and why the input is or is not receiving (<see cref="InputState"/>) in
/// UringConnection.Receive.cs, the send in flight (<see cref="SendOp"/>) in UringConnection.Send.cs,
/// and the close (<see cref="CloseState"/>) in UringConnection.Close.cs. Close order: cancel what is in flight (by user_data), wait until
/// neither a recv nor a send is in the kernel and the send loop has ended, close the fd (FIN, or
/// RST after an abort), then free the slot. Send memory (pipe segments, the iovecs of a
/// <see cref="SendSlot"/>) is never released while the kernel may still read it.
/// </remarks>
internal sealed partial class UringConnection : ConnectionContext, ICompletionHandler, IValueTaskSource<int>
{
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
    private readonly PinnedBlockMemoryPool _pool;
    private int _connectionClosedFired;

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
        // A bulk recv may overshoot the read limit by itself: at most half the limit.
        _bulkReceiveSize = maxRead > 0 ? (int)Math.Clamp(maxRead / 2, 1, BulkReceiveSize) : BulkReceiveSize;
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

    private static System.Net.Sockets.SocketException ErrnoException(int result) =>
        new((int)Errno.ToSocketError(result), Errno.Describe(result));

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
