using System.IO.Pipelines;
using System.Net;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One TCP or Unix connection on an <see cref="IoLoop"/>: its policy, and none of what the kernel
/// may hold. The socket's fd is its <see cref="ConnectionSocket"/>'s until a
/// <see cref="CloseOperation"/> takes it; each receive's and send's memory is its operation's
/// (<see cref="ReceiveOperation"/>, <see cref="DirectReceiveOperation"/>, <see cref="SendOperation"/>).
/// The connection decides what to arm next and names its operations in the kernel by user_data only.
/// </summary>
/// <remarks>
/// Three small state machines, one file each: the receive side in UringConnection.Receive.cs (what
/// the kernel holds, <see cref="ReceiveState"/>; what the next receive is, <see cref="ReceiveKind"/>;
/// why the input is or is not receiving, <see cref="InputState"/>), the send in flight
/// (<see cref="SendState"/>) in UringConnection.Send.cs, and the close (<see cref="CloseState"/>) in
/// UringConnection.Close.cs. Close order: cancel what is in flight (by user_data), wait until no
/// receive and no send result is pending and the send loop has ended, close the fd (FIN, or RST
/// after an abort), then leave the loop. A zero-copy send's notification may come after that: its
/// <see cref="SendOperation"/> holds the pages until then. Fields under a "loop thread only" line are touched
/// only on the loop thread.
/// </remarks>
internal sealed partial class UringConnection : ConnectionContext, ILoopMember, IValueTaskSource<int>
{
    private readonly IoLoop _loop;
    private readonly ConnectionSocket _socket;
    private readonly ConnectionOptions _options;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly CancellationTokenSource _connectionClosed = new();
    // Both completed only on thread-pool threads (never the loop's), so their continuations (Kestrel's
    // DisposeAsync above all) run right there, without another hop.
    private readonly TaskCompletionSource _closedTask = new();
    private readonly TaskCompletionSource _connectionClosedFiredTask = new();
    private int _connectionClosedFired;

    /// <summary>A connection of <paramref name="socket"/> on <paramref name="loop"/>, its member from now on; call <see cref="Start"/> next, on the loop thread.</summary>
    public UringConnection(IoLoop loop, ConnectionSocket socket, EndPoint? localEndPoint, EndPoint? remoteEndPoint, ConnectionOptions options)
    {
        _loop = loop;
        _socket = socket;
        _options = options;
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = remoteEndPoint;
        ConnectionId = CorrelationId.Next();
        _input = new Pipe(options.InputFor(loop));
        _output = new Pipe(options.OutputFor(loop));
        Transport = new DuplexPipe(_input.Reader, _output.Writer);
        _onFlushCompleted = OnFlushCompleted;
        loop.Members.Add(this);
        FdHeadroom.ConnectionOpened(); // until OnClosed or OnLoopStopped
    }

    public override string ConnectionId { get; set; }

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _connectionClosed.Token;
        set => throw new NotSupportedException("ConnectionClosed is owned by the transport.");
    }

    public UringEngine Engine => _loop.Engine;

    public int LoopIndex => _loop.Index;

    public int MemberIndex { get; set; } = -1;

    /// <summary>The socket's fd while the connection owns it (tests read its options).</summary>
    internal int Fd => _socket.Fd;

    /// <summary>Completes when the fd is closed and the connection has left its loop (or the loop stopped).</summary>
    internal Task Closed => _closedTask.Task;

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
        // Adopted after the loop's stop began (it has aborted its members): it closes with the rest.
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

    public void OnFault(Exception error) => AbortOnLoop(new ConnectionAbortedException("The transport failed: " + error.Message, error));

    public void OnLoopStopping() => AbortOnLoop(new ConnectionAbortedException("The transport is stopping."));

    private static System.Net.Sockets.SocketException ErrnoException(int result) =>
        new((int)Errno.ToSocketError(result), Errno.Describe(result));

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
