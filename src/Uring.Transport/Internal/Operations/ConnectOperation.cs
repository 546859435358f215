using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One outbound connect to one address, on one loop: creates the socket, connects it with
/// IORING_OP_CONNECT, and on success hands the fd to a new <see cref="UringConnection"/>; on failure
/// or cancellation it closes the fd. Its own loop member: cancelled when the loop stops, failed
/// (<see cref="ObjectDisposedException"/>) when it has.
/// </summary>
/// <remarks>
/// Owns the socket's fd until the connection takes it (or it closes it), and the native sockaddr
/// the kernel reads from its submit to its final completion: a cancel only asks the ring (by
/// user_data) and waits for that completion. A loop that exits with it in the kernel keeps the
/// sockaddr for good (never freed).
/// </remarks>
internal sealed unsafe class ConnectOperation : KernelOperation, ILoopMember
{
    private readonly EndPoint _endPoint;
    private readonly ConnectionOptions _connections;
    private readonly bool _noDelay;
    private readonly CancellationToken _cancellationToken;
    private readonly TaskCompletionSource<UringConnection> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenRegistration _registration;

    // Loop thread only.
    private byte* _address;
    private int _addressLength;
    private int _fd = -1;
    private bool _joined;
    private bool _cancelRequested;

    private ConnectOperation(IoLoop loop, EndPoint endPoint, ConnectionOptions connections, bool noDelay, CancellationToken cancellationToken)
        : base(loop, OpKind.Connect)
    {
        _endPoint = endPoint;
        _connections = connections;
        _noDelay = noDelay;
        _cancellationToken = cancellationToken;
    }

    public override ILoopMember? Owner => this;

    public int MemberIndex { get; set; } = -1;

    /// <summary>
    /// Connects to <paramref name="endPoint"/> (an <see cref="IPEndPoint"/> or a
    /// <see cref="UnixDomainSocketEndPoint"/>) on the next loop of <paramref name="group"/>. Fails
    /// with a <see cref="SocketException"/> naming the endpoint, or is cancelled by the token.
    /// </summary>
    public static Task<UringConnection> StartAsync(IoLoopGroup group, EndPoint endPoint, UringTransportOptions options, CancellationToken cancellationToken)
    {
        var operation = new ConnectOperation(group.NextLoop(), endPoint, group.ConnectionOptionsFor(options), options.NoDelay, cancellationToken);
        // Queued before the start when the token has already fired: the start then sees the request.
        operation._registration = cancellationToken.UnsafeRegister(static state =>
        {
            var op = (ConnectOperation)state!;
            op.Loop.Post(static s => ((ConnectOperation)s!).CancelOnLoop(), op, static _ => { }); // a stopped loop has failed it
        }, operation);
        operation.Loop.Post(static s => ((ConnectOperation)s!).StartOnLoop(), operation,
            static s => ((ConnectOperation)s!).Finish(Stopped("The transport stopped before the connect started.")));
        return operation._result.Task;
    }

    private void StartOnLoop()
    {
        if (_cancelRequested)
        {
            Finish(null);
            return;
        }
        if (!Loop.IsRunning)
        {
            Finish(Stopped("The transport stopped before the connect started."));
            return;
        }
        try
        {
            _fd = NativeSocket.CreateStream(SockAddr.FamilyOf(_endPoint));
        }
        catch (SocketException e)
        {
            Fail(e.SocketErrorCode, e.Message);
            return;
        }
        try
        {
            if (_endPoint is IPEndPoint && _noDelay)
                NativeSocket.TrySetOption(_fd, Linux.IPPROTO_TCP, Linux.TCP_NODELAY, 1);
            _address = (byte*)NativeMemory.Alloc(SockAddr.MaxSize);
            _addressLength = SockAddr.Write(_endPoint, new Span<byte>(_address, SockAddr.MaxSize));
            Loop.Members.Add(this);
            _joined = true;
        }
        catch (Exception e) // out of memory, an address that does not fit: nothing reached the kernel
        {
            FreeAddress();
            Finish(e);
            return;
        }
        if (!Submit()) FreeAddress(); // nothing reached the kernel; the fault path closes the fd and fails the task
    }

    protected override void Prepare(IRing ring) => ring.PrepareConnect(_fd, _address, _addressLength, UserData);

    private static ObjectDisposedException Stopped(string reason) => new(nameof(UringConnectionFactory), reason);

    private void CancelOnLoop()
    {
        if (_cancelRequested || _result.Task.IsCompleted) return;
        _cancelRequested = true;
        if (InKernel) Loop.Operations.Cancel(UserData, this);
        // Not started yet: StartOnLoop sees the request.
    }

    public override void Complete(in Completion completion)
    {
        Finished();
        FreeAddress();
        if (_cancelRequested) Finish(null); // even if it connected meanwhile: the caller has given up
        else if (completion.Result < 0) Fail(Errno.ToSocketError(completion.Result), Errno.Name(completion.Result), completion.Result);
        else Connected();
    }

    private void Connected()
    {
        UringConnection connection;
        try
        {
            connection = new UringConnection(Loop, new ConnectionSocket(_fd), NativeSocket.GetLocalEndPoint(_fd),
                NativeSocket.GetRemoteEndPoint(_fd) ?? _endPoint, _connections);
        }
        catch (Exception e)
        {
            Finish(e); // closes the fd: nothing else owns it
            return;
        }
        _fd = -1; // the connection owns it now
        Leave();
        connection.Start(accepted: false);
        UringLog.ClientConnected(Loop.Logger, connection.ConnectionId, Loop.Index, connection.RemoteEndPoint);
        _registration.Unregister();
        _result.TrySetResult(connection);
    }

    /// <summary>The connect could not be queued, or handling its completion threw: it fails.</summary>
    public void OnFault(Exception error)
    {
        if (InKernel)
        {
            // Its completion will come; a cancel that could not be queued is asked for again.
            if (_cancelRequested) Loop.Operations.Cancel(UserData, this);
            return;
        }
        FreeAddress();
        Finish(error);
    }

    public void OnLoopStopping() => CancelOnLoop();

    public void OnLoopStopped(string reason)
    {
        _address = null; // abandoned in the kernel (kept for good) or already freed
        Finish(Stopped(reason));
    }

    // The sockaddr is the kernel's until the final completion, and freed only after it (or a failed submit).
    public override void Abandon() => _address = null;

    private void Fail(SocketError error, string detail, int errno = 0)
    {
        UringLog.ConnectFailed(Loop.Logger, _endPoint, errno != 0 ? Errno.Describe(errno) : detail);
        // The message names the endpoint: a DnsEndPoint caller sees which address failed.
        Finish(new SocketException((int)error,
            $"Connecting to {_endPoint} failed: {new SocketException((int)error).Message} ({detail})."));
    }

    /// <summary>Ends the operation without a connection: closes the fd, leaves the loop, then fails or cancels the task.</summary>
    private void Finish(Exception? error)
    {
        if (_fd >= 0)
        {
            NativeSocket.Close(_fd);
            _fd = -1;
        }
        Leave();
        _registration.Unregister();
        if (error is null)
            _result.TrySetCanceled(_cancellationToken);
        else
            _result.TrySetException(error);
    }

    private void Leave()
    {
        if (!_joined) return;
        _joined = false;
        Loop.Members.Remove(this);
    }

    private void FreeAddress()
    {
        if (_address is null) return;
        NativeMemory.Free(_address);
        _address = null;
    }
}
