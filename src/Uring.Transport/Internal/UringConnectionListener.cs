using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// A bound endpoint. TCP with sharding: one SO_REUSEPORT socket and acceptor per loop, connections
/// stay on the loop that accepted them. Otherwise one acceptor hands connections out round-robin.
/// </summary>
internal sealed class UringConnectionListener : IConnectionListener
{
    private readonly IoLoopGroup _group;
    private readonly UringTransportOptions _options;
    private readonly Channel<UringConnection> _accepted = Channel.CreateUnbounded<UringConnection>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
    private readonly List<Acceptor> _acceptors = new();
    private readonly Func<ValueTask> _release;
    private EndPoint? _fixedLocalEndPoint;
    private bool _isTcp;
    private bool _sharded;
    private int _nextLoop;
    private volatile bool _unbound;
    private Task? _unbindTask;
    private int _disposed;

    public UringConnectionListener(IoLoopGroup group, EndPoint endPoint, UringTransportOptions options, Func<ValueTask> release)
    {
        _group = group;
        EndPoint = endPoint;
        _options = options;
        _release = release;
    }

    public EndPoint EndPoint { get; private set; }

    public void Bind()
    {
        IoLoop[] loops = _group.Loops;
        var fds = new List<(int Fd, IoLoop Loop)>();
        try
        {
            switch (EndPoint)
            {
                case IPEndPoint ip:
                    _isTcp = true;
                    _sharded = _options.ListenerSharding && loops.Length > 1;
                    int first = NativeSocket.Listen(ip, _options.Backlog, reusePort: _sharded);
                    fds.Add((first, loops[0]));
                    var bound = (IPEndPoint)(NativeSocket.GetLocalEndPoint(first) ?? ip);
                    EndPoint = new IPEndPoint(ip.Address, bound.Port); // port 0 resolved
                    if (_sharded)
                        for (int i = 1; i < loops.Length; i++)
                            fds.Add((NativeSocket.Listen(EndPoint, _options.Backlog, reusePort: true), loops[i]));
                    else
                        fds[0] = (first, _group.NextLoop());
                    if (!ip.Address.Equals(IPAddress.Any) && !ip.Address.Equals(IPAddress.IPv6Any))
                        _fixedLocalEndPoint = EndPoint;
                    break;
                case UnixDomainSocketEndPoint unix:
                    string path = unix.ToString();
                    if (path.Length > 0 && path[0] != '\0' && File.Exists(path))
                        File.Delete(path); // a stale socket file from an earlier run
                    fds.Add((NativeSocket.Listen(unix, _options.Backlog, reusePort: false), _group.NextLoop()));
                    _fixedLocalEndPoint = unix;
                    break;
                case FileHandleEndPoint handle:
                    int fd = checked((int)handle.FileHandle);
                    int r = NativeSocket.SetNonBlocking(fd, true);
                    if (r < 0) throw new RingException($"fcntl(O_NONBLOCK) on inherited handle {fd}", r);
                    _isTcp = NativeSocket.GetLocalEndPoint(fd) is IPEndPoint;
                    fds.Add((fd, _group.NextLoop()));
                    break;
                default:
                    throw new NotSupportedException($"The Uring transport cannot bind {EndPoint.GetType().Name}.");
            }
        }
        catch (RingException e) when (e.Errno == Errno.EADDRINUSE)
        {
            foreach (var (fd, _) in fds) NativeSocket.Close(fd);
            throw new AddressInUseException(e.Message, e);
        }
        catch
        {
            foreach (var (fd, _) in fds) NativeSocket.Close(fd);
            throw;
        }

        foreach (var (fd, loop) in fds)
        {
            var acceptor = new Acceptor(this, loop, fd);
            _acceptors.Add(acceptor);
            loop.Schedule(static a => ((Acceptor)a!).StartOnLoop(), acceptor);
        }
        UringLog.ListenerBound(_group.Logger, EndPoint, _acceptors.Count);
    }

    /// <summary>A new connection's fd, on the accepting loop's thread.</summary>
    public void OnAccepted(int fd, IoLoop acceptingLoop)
    {
        IoLoop target = _sharded ? acceptingLoop : _group.Loops[(int)((uint)Interlocked.Increment(ref _nextLoop) % (uint)_group.Loops.Length)];
        if (target == acceptingLoop)
            Adopt(fd, target);
        else
            target.Schedule(static state =>
            {
                var (listener, fd, loop) = ((UringConnectionListener, int, IoLoop))state!;
                listener.Adopt(fd, loop);
            }, (this, fd, target));
    }

    private void Adopt(int fd, IoLoop loop)
    {
        if (_unbound)
        {
            NativeSocket.Close(fd);
            return;
        }
        UringConnection connection;
        try
        {
            _options.Accepted?.Invoke(fd);
            if (_isTcp && _options.NoDelay)
                NativeSocket.TrySetOption(fd, Linux.IPPROTO_TCP, Linux.TCP_NODELAY, 1);

            EndPoint? local = _fixedLocalEndPoint ?? NativeSocket.GetLocalEndPoint(fd);
            EndPoint? remote = NativeSocket.GetRemoteEndPoint(fd);
            connection = new UringConnection(loop, fd, local, remote, _group.Pool, _group.ApplicationScheduler,
                _options.MaxReadBufferSize, _options.MaxWriteBufferSize);
        }
        catch
        {
            NativeSocket.Close(fd); // nothing owns the fd yet
            throw;
        }
        connection.Start();
        if (!_accepted.Writer.TryWrite(connection))
            connection.AbortOnLoop(new ConnectionAbortedException("The listener was unbound."));
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _accepted.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (_accepted.Reader.TryRead(out UringConnection? connection))
                    return connection;
            }
        }
        catch (ChannelClosedException)
        {
        }
        return null;
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        lock (_acceptors)
            _unbindTask ??= UnbindCoreAsync();
        return new ValueTask(_unbindTask.WaitAsync(cancellationToken));
    }

    private async Task UnbindCoreAsync()
    {
        _unbound = true;
        foreach (Acceptor acceptor in _acceptors)
            acceptor.Loop.Schedule(static a => ((Acceptor)a!).StopOnLoop(), acceptor);
        await Task.WhenAll(_acceptors.Select(a => a.Stopped)).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        _accepted.Writer.TryComplete();
        // Accepted but never handed to Kestrel: nobody will ever serve them.
        while (_accepted.Reader.TryRead(out UringConnection? orphan))
            orphan.Abort(new ConnectionAbortedException("The listener was unbound."));
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            await UnbindAsync().ConfigureAwait(false);
        }
        finally
        {
            await _release().ConfigureAwait(false);
        }
    }
}
