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
/// <remarks>
/// The port is taken the way Kestrel's Sockets transport takes it: the first socket binds without
/// SO_REUSEPORT, so an endpoint someone already serves fails with <see cref="AddressInUseException"/>.
/// Only then does it allow reuse for the loops' other sockets, and a steering program on the group
/// picks among our sockets only, so a stranger that joins the group later gets no connection. None
/// of our sockets leaves the group before the unbind closes them all (an acceptor whose loop fails
/// hands its socket to another loop), so the program's indices stay those of our sockets.
/// Accepted connections wait for Kestrel's <see cref="AcceptAsync"/> in a queue of at most
/// <see cref="UringTransportOptions.Backlog"/>: when it is full the acceptors stop accepting, and
/// new connections wait in the kernel's own backlog.
/// </remarks>
internal sealed class UringConnectionListener : IConnectionListener
{
    private readonly IoLoopGroup _group;
    private readonly UringTransportOptions _options;
    private readonly ConnectionOptions _connections;
    private readonly Channel<UringConnection> _accepted = Channel.CreateUnbounded<UringConnection>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
    private readonly List<Acceptor> _acceptors = new();
    private readonly Func<ValueTask> _release;
    private EndPoint? _fixedLocalEndPoint;
    private bool _isTcp;
    private bool _sharded;
    private int _queued; // accepted, not yet taken by AcceptAsync
    private volatile bool _unbound;
    private Task? _unbindTask;
    private int _disposed;

    public UringConnectionListener(IoLoopGroup group, EndPoint endPoint, UringTransportOptions options, Func<ValueTask> release)
    {
        _group = group;
        EndPoint = endPoint;
        _options = options;
        _connections = group.ConnectionOptionsFor(options);
        _release = release;
    }

    public EndPoint EndPoint { get; private set; }

    /// <summary>Connections accepted and not yet taken by <see cref="AcceptAsync"/>.</summary>
    public int Queued => Volatile.Read(ref _queued);

    /// <summary>The listen backlog (<see cref="UringTransportOptions.Backlog"/>): the most connections one accept round can take.</summary>
    public int Backlog => _options.Backlog;

    /// <summary>True while the accept queue has room: acceptors keep accepting only then.</summary>
    public bool HasRoom => Volatile.Read(ref _queued) < _options.Backlog;

    /// <summary>
    /// Binds and starts the acceptors. Fails as Kestrel's Sockets transport does:
    /// <see cref="AddressInUseException"/> for an endpoint in use, otherwise a <see cref="SocketException"/>
    /// (or <see cref="IOException"/> for an inherited handle) naming the endpoint.
    /// </summary>
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
                    BindTcp(ip, loops, fds);
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
                    if (r < 0) throw new IOException($"The inherited handle {fd} cannot be served: fcntl(O_NONBLOCK) failed with {Errno.Describe(r)}.");
                    _isTcp = NativeSocket.GetLocalEndPoint(fd) is IPEndPoint;
                    fds.Add((fd, _group.NextLoop()));
                    break;
                default:
                    throw new NotSupportedException($"The Uring transport cannot bind {EndPoint.GetType().Name}.");
            }
        }
        catch (Exception e)
        {
            foreach (var (fd, _) in fds) NativeSocket.Close(fd);
            if (e is SocketException socket) throw BindFailure(socket);
            throw;
        }

        // TCP_NODELAY set on a listening socket is inherited by the sockets it accepts (Linux copies
        // it into each child): one setsockopt per listener instead of one per connection.
        if (_isTcp && _options.NoDelay)
            foreach (var (fd, _) in fds) NativeSocket.TrySetOption(fd, Linux.IPPROTO_TCP, Linux.TCP_NODELAY, 1);

        foreach (var (fd, loop) in fds)
        {
            var acceptor = new Acceptor(this, loop, fd);
            lock (_acceptors) _acceptors.Add(acceptor);
            loop.Post(static a => ((Acceptor)a!).StartOnLoop(), acceptor, static a => ((Acceptor)a!).OnLoopStopped("The I/O loop stopped before the listener started."));
        }
        UringLog.ListenerBound(_group.Logger, EndPoint, _acceptors.Count);
    }

    private void BindTcp(IPEndPoint ip, IoLoop[] loops, List<(int Fd, IoLoop Loop)> fds)
    {
        // Exclusive first: a port someone else listens on (even with SO_REUSEPORT) refuses this bind.
        int first = NativeSocket.CreateBound(ip, reusePort: false);
        fds.Add((first, _sharded ? loops[0] : _group.NextLoop()));
        var bound = (IPEndPoint)(NativeSocket.GetLocalEndPoint(first) ?? ip);
        EndPoint = new IPEndPoint(ip.Address, bound.Port); // port 0 resolved
        if (!ip.Address.Equals(IPAddress.Any) && !ip.Address.Equals(IPAddress.IPv6Any))
            _fixedLocalEndPoint = EndPoint;
        if (!_sharded)
        {
            NativeSocket.Listen(first, _options.Backlog);
            return;
        }

        // Now ours, the port may be shared by the other loops' sockets. The group's indices follow
        // the order of listen(), which is the loops' order.
        NativeSocket.SetOption(first, Linux.SOL_SOCKET, Linux.SO_REUSEPORT, 1);
        for (int i = 1; i < loops.Length; i++)
            fds.Add((NativeSocket.CreateBound(EndPoint, reusePort: true), loops[i]));
        foreach (var (fd, _) in fds)
            NativeSocket.Listen(fd, _options.Backlog);
        int[] cpus = SteeringCpus(loops);
        int steer = NativeSocket.AttachReusePortSteering(first, fds.Count, cpus);
        if (steer < 0) UringLog.SteeringRefused(_group.Logger, EndPoint, Errno.Describe(steer));
        else UringLog.SteeringAttached(_group.Logger, EndPoint, cpus.Length > 0 ? "by receiving CPU (" + string.Join(", ", cpus.Select((c, i) => $"CPU {c} -> loop {i}")) + "), else by flow hash" : "by flow hash");
    }

    /// <summary>
    /// The CPU each loop's socket takes connections from, in loop order, or none (flow hash): with
    /// <see cref="ListenerSteering.Auto"/> when every loop is bound to a CPU of its own. Then the
    /// connection's softirq work and its loop share one CPU's caches. Measured with the defaults on
    /// 2 cores against the flow hash (CPU per request): plaintext 64 connections 0.90x on io_uring,
    /// 1.00x on epoll; a new connection per request 0.70x and 0.73x.
    /// </summary>
    private int[] SteeringCpus(IoLoop[] loops)
    {
        if (_options.ListenerSteering != ListenerSteering.Auto) return [];
        var cpus = new int[loops.Length];
        for (int i = 0; i < loops.Length; i++)
        {
            if (loops[i].BoundCpu is not int cpu || Array.IndexOf(cpus, cpu, 0, i) >= 0) return [];
            cpus[i] = cpu;
        }
        return cpus;
    }

    private Exception BindFailure(SocketException e)
    {
        string message = $"Binding {EndPoint} failed: {e.Message}.";
        if (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            return new AddressInUseException($"Address {EndPoint} is already in use ({e.Message}).", e);
        if (EndPoint is FileHandleEndPoint)
            return new IOException(message, e);
        return new SocketException((int)e.SocketErrorCode, message);
    }

    /// <summary>
    /// A listening fd whose loop failed: starts a new acceptor for it on another running loop, unless
    /// the listener is being unbound or no loop runs. True when the fd changed hands.
    /// </summary>
    public bool TryRehome(int fd, IoLoop failed)
    {
        if (_unbound) return false;
        IoLoop target = _group.NextLoop(failed);
        if (target == failed || !target.IsRunning) return false;
        var acceptor = new Acceptor(this, target, fd);
        lock (_acceptors)
        {
            if (_unbound) return false;
            _acceptors.Add(acceptor);
        }
        UringLog.ListenerRehomed(_group.Logger, EndPoint, failed.Index, target.Index);
        target.Post(static a => ((Acceptor)a!).StartOnLoop(), acceptor, static a => ((Acceptor)a!).OnLoopStopped("The I/O loop stopped before the listener moved to it."));
        return true;
    }

    /// <summary>
    /// A new connection's fd, on the accepting loop's thread. It stays there when the listener is
    /// sharded, else (or when that loop is failing and reaps what its ring had accepted) goes to the
    /// next running loop; with none running, it is closed.
    /// </summary>
    public void OnAccepted(int fd, IoLoop acceptingLoop)
    {
        IoLoop target = _sharded && acceptingLoop.IsRunning ? acceptingLoop : _group.NextLoop(acceptingLoop);
        if (target == acceptingLoop)
        {
            Adopt(fd, target);
            return;
        }
        // Handed over: if that loop stops first, nobody owns the fd but this failure path.
        target.Post(static state =>
        {
            var (listener, fd, loop) = ((UringConnectionListener, int, IoLoop))state!;
            listener.Adopt(fd, loop);
        }, (this, fd, target), static state => NativeSocket.Close((((UringConnectionListener, int, IoLoop))state!).Item2));
    }

    private void Adopt(int fd, IoLoop loop)
    {
        if (_unbound || !loop.IsRunning)
        {
            NativeSocket.SetLingerZero(fd);
            NativeSocket.Close(fd);
            return;
        }
        UringConnection connection;
        try
        {
            _group.Environment.Accepted?.Invoke(fd);
            EndPoint? local = _fixedLocalEndPoint ?? NativeSocket.GetLocalEndPoint(fd);
            EndPoint? remote = NativeSocket.GetRemoteEndPoint(fd);
            connection = new UringConnection(loop, new ConnectionSocket(fd), local, remote, _connections);
        }
        catch
        {
            NativeSocket.Close(fd); // nothing owns the fd yet
            throw;
        }
        try
        {
            connection.Start();
        }
        catch (Exception e)
        {
            connection.OnFault(e); // closes it; Kestrel, given it below, sees the abort
        }
        Interlocked.Increment(ref _queued);
        if (!_accepted.Writer.TryWrite(connection))
        {
            Interlocked.Decrement(ref _queued);
            connection.AbortOnLoop(new ConnectionAbortedException("The listener was unbound."));
        }
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _accepted.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (_accepted.Reader.TryRead(out UringConnection? connection))
                {
                    // From full to not full: the acceptors that stopped for lack of room go on.
                    if (Interlocked.Decrement(ref _queued) == _options.Backlog - 1) ResumeAcceptors();
                    return connection;
                }
            }
        }
        catch (ChannelClosedException)
        {
        }
        return null;
    }

    private void ResumeAcceptors()
    {
        foreach (Acceptor acceptor in Acceptors())
            acceptor.Loop.Post(static a => ((Acceptor)a!).Resume(), acceptor, static _ => { });
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        Task unbind = LazyInitializer.EnsureInitialized(ref _unbindTask, ref _unbindGate, UnbindCoreAsync);
        return new ValueTask(unbind.WaitAsync(cancellationToken));
    }

    private object? _unbindGate;

    private Acceptor[] Acceptors()
    {
        lock (_acceptors) return [.. _acceptors];
    }

    private async Task UnbindCoreAsync()
    {
        Acceptor[] acceptors;
        lock (_acceptors)
        {
            _unbound = true; // under the lock: no acceptor is added (rehomed) after this snapshot
            acceptors = [.. _acceptors];
        }
        try
        {
            foreach (Acceptor acceptor in acceptors)
                acceptor.Loop.Post(static a => ((Acceptor)a!).StopOnLoop(), acceptor, static _ => { }); // a stopped loop has closed it
            await Task.WhenAll(acceptors.Select(a => a.Stopped)).WaitAsync(_group.Environment.UnbindTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            UringLog.UnbindTimedOut(_group.Logger, EndPoint, _group.Environment.UnbindTimeout.TotalSeconds);
        }
        finally
        {
            // Even when an acceptor did not report in time: AcceptAsync must end (return null).
            _accepted.Writer.TryComplete();
            // Accepted but never handed to Kestrel: nobody will ever serve them.
            while (_accepted.Reader.TryRead(out UringConnection? orphan))
                orphan.Abort(new ConnectionAbortedException("The listener was unbound."));
        }
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
