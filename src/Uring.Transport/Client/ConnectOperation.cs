using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Uring.Native;
using Uring.Transport.Internal;

namespace Uring.Transport.Client;

/// <summary>
/// One outbound connect to one address, on one loop: creates the socket, prepares
/// IORING_OP_CONNECT (a non-blocking connect plus writability on the epoll engine), and on success
/// hands the fd to a new <see cref="UringConnection"/>; on failure or cancellation it closes the fd.
/// </summary>
/// <remarks>
/// The native sockaddr belongs to this object until the connect's final completion: cancellation
/// only asks the ring to cancel (by user_data) and waits for that completion, so the kernel never
/// reads freed memory.
/// </remarks>
internal sealed unsafe class ConnectOperation : ICompletionHandler
{
    private readonly IoLoop _loop;
    private readonly PinnedBlockMemoryPool _pool;
    private readonly EndPoint _endPoint;
    private readonly UringTransportOptions _options;
    private readonly CancellationToken _cancellationToken;
    private readonly TaskCompletionSource<UringConnection> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenRegistration _registration;

    // Loop thread only.
    private byte* _address;
    private int _fd = -1;
    private int _slot = -1;
    private uint _generation;
    private bool _inFlight;
    private bool _cancelRequested;

    private ConnectOperation(IoLoop loop, PinnedBlockMemoryPool pool, EndPoint endPoint, UringTransportOptions options, CancellationToken cancellationToken)
    {
        _loop = loop;
        _pool = pool;
        _endPoint = endPoint;
        _options = options;
        _cancellationToken = cancellationToken;
    }

    /// <summary>
    /// Connects to <paramref name="endPoint"/> (an <see cref="IPEndPoint"/> or a
    /// <see cref="UnixDomainSocketEndPoint"/>) on the next loop of <paramref name="group"/>. Fails
    /// with a <see cref="SocketException"/> naming the endpoint, or is cancelled by the token.
    /// </summary>
    public static Task<UringConnection> StartAsync(IoLoopGroup group, EndPoint endPoint, UringTransportOptions options, CancellationToken cancellationToken)
    {
        var operation = new ConnectOperation(group.NextLoop(), group.Pool, endPoint, options, cancellationToken);
        // Queued before the start when the token has already fired: the start then sees the request.
        operation._registration = cancellationToken.UnsafeRegister(static state =>
        {
            var op = (ConnectOperation)state!;
            op._loop.Post(static s => ((ConnectOperation)s!).CancelOnLoop(), op, static _ => { }); // a stopped loop has failed it
        }, operation);
        operation._loop.Post(static s => ((ConnectOperation)s!).StartOnLoop(), operation,
            static s => ((ConnectOperation)s!).Finish(Stopped("The transport stopped before the connect started.")));
        return operation._result.Task;
    }

    private ulong Token(OpKind kind) => UserData.Encode(kind, _slot, _generation);

    private void StartOnLoop()
    {
        if (_cancelRequested)
        {
            Finish(null);
            return;
        }
        if (!_loop.IsRunning)
        {
            Finish(Stopped("The transport stopped before the connect started."));
            return;
        }
        try
        {
            _fd = NativeSocket.CreateStream(SockAddr.FamilyOf(_endPoint));
        }
        catch (RingException e)
        {
            Fail(-e.Errno);
            return;
        }
        if (_endPoint is IPEndPoint && _options.NoDelay)
            NativeSocket.TrySetOption(_fd, Linux.IPPROTO_TCP, Linux.TCP_NODELAY, 1);

        try
        {
            // Owned by this operation until the connect's final completion (the kernel reads it until then).
            _address = (byte*)NativeMemory.Alloc(SockAddr.MaxSize);
            int length = SockAddr.Write(_endPoint, new Span<byte>(_address, SockAddr.MaxSize));
            (_slot, _generation) = _loop.AddHandler(this);
            _loop.Ring.PrepareConnect(_fd, _address, length, Token(OpKind.Connect));
        }
        catch (Exception e)
        {
            // Nothing reached the kernel: release the slot and the sockaddr, close the fd, fail the task.
            ReleaseSlotAndAddress();
            Finish(e);
            return;
        }
        _inFlight = true;
    }

    private static ObjectDisposedException Stopped(string reason) => new(nameof(UringConnectionFactory), reason);

    private void CancelOnLoop()
    {
        if (_cancelRequested || _result.Task.IsCompleted) return;
        _cancelRequested = true;
        if (_inFlight) _loop.Ring.PrepareCancel(Token(OpKind.Connect), Token(OpKind.Cancel));
        // Not started yet: StartOnLoop sees the request.
    }

    public void OnCompletion(OpKind kind, in Completion completion)
    {
        if (kind != OpKind.Connect) return; // the cancel's own result: the connect reports for itself
        _inFlight = false;
        ReleaseSlotAndAddress();

        if (_cancelRequested)
        {
            Finish(null); // even if it connected meanwhile: the caller has given up
        }
        else if (completion.Result < 0)
        {
            Fail(completion.Result);
        }
        else
        {
            Connected();
        }
    }

    private void Connected()
    {
        PipeScheduler scheduler = _options.UnsafePreferInlineScheduling ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
        UringConnection connection;
        try
        {
            connection = new UringConnection(_loop, _fd, NativeSocket.GetLocalEndPoint(_fd), NativeSocket.GetRemoteEndPoint(_fd) ?? _endPoint,
                _pool, scheduler, _options.MaxReadBufferSize, _options.MaxWriteBufferSize);
        }
        catch (Exception e)
        {
            Finish(e); // closes the fd: nothing else owns it
            return;
        }
        _fd = -1; // the connection owns it now
        connection.Start(accepted: false);
        UringLog.ClientConnected(_loop.Logger, connection.ConnectionId, _loop.Index, connection.RemoteEndPoint);
        _registration.Unregister();
        _result.TrySetResult(connection);
    }

    public void OnHandlerFault(Exception error)
    {
        // Only OnCompletion runs as a handler, and it has no op in flight by then.
        if (_inFlight) return;
        ReleaseSlotAndAddress();
        Finish(error);
    }

    public void OnLoopStopping() => CancelOnLoop();

    public bool InKernel => _inFlight;

    public void OnLoopStopped(string reason)
    {
        // No completion will come. A sockaddr the kernel may still read stays allocated.
        if (!_inFlight && _address is not null) NativeMemory.Free(_address);
        _address = null;
        _slot = -1;
        _inFlight = false;
        Finish(Stopped(reason));
    }

    private void Fail(int errno)
    {
        SocketError error = Errno.ToSocketError(errno);
        UringLog.ConnectFailed(_loop.Logger, _endPoint, Errno.Describe(errno));
        // The message names the endpoint: a DnsEndPoint caller sees which address failed.
        Finish(new SocketException((int)error,
            $"Connecting to {_endPoint} failed: {new SocketException((int)error).Message} ({Errno.Name(errno)})."));
    }

    /// <summary>Ends the operation without a connection: closes the fd, then fails or cancels the task.</summary>
    private void Finish(Exception? error)
    {
        if (_fd >= 0)
        {
            NativeSocket.Close(_fd);
            _fd = -1;
        }
        _registration.Unregister();
        if (error is null)
            _result.TrySetCanceled(_cancellationToken);
        else
            _result.TrySetException(error);
    }

    private void ReleaseSlotAndAddress()
    {
        if (_slot >= 0)
        {
            _loop.RemoveHandler(_slot);
            _slot = -1;
        }
        if (_address is not null)
        {
            NativeMemory.Free(_address);
            _address = null;
        }
    }
}
