using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One listening socket on one loop, with an accept armed: multishot where the kernel has it
/// (5.19), else one accept at a time. Accept errors such as EMFILE are logged and the accept is
/// re-armed after a back-off; the loop goes on. While the listener's accept queue is full, no
/// accept is armed (the kernel's backlog holds new connections).
/// </summary>
/// <remarks>The listening fd is owned here and closed exactly once, by <see cref="Finish"/>.</remarks>
internal sealed class Acceptor : ICompletionHandler
{
    private const int AcceptFlags = Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC;
    private readonly UringConnectionListener _listener;
    private readonly IoLoop _loop;
    private readonly int _fd;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _slot = -1;
    private uint _generation;
    private bool _armed;
    private bool _cancelling;     // a cancel of the armed accept was asked for (full queue)
    private bool _stopping;
    private bool _backingOff;
    private int _backoffMs;
    private int _finished;

    static Acceptor()
    {
        // The back-off waits on a runtime timer. .NET starts its timer thread when the first timer
        // comes due, and starting a thread takes a pipe (two fds): at EMFILE, just when the back-off
        // is needed, Task.Delay would throw OutOfMemoryException. So the timer thread starts now.
        _ = Task.Delay(1);
    }

    public Acceptor(UringConnectionListener listener, IoLoop loop, int fd)
    {
        _listener = listener;
        _loop = loop;
        _fd = fd;
    }

    public IoLoop Loop => _loop;

    public Task Stopped => _stopped.Task;

    public bool InKernel => _armed;

    /// <summary>Registers with the loop and arms the accept; on the loop thread.</summary>
    public void StartOnLoop()
    {
        if (_stopping || !_loop.IsRunning)
        {
            Finish(); // handed to a loop that is stopping (a rehome during shutdown): nothing to accept for
            return;
        }
        try
        {
            (_slot, _generation) = _loop.AddHandler(this);
        }
        catch (Exception e)
        {
            UringLog.AcceptFailed(_loop.Logger, _listener.EndPoint, e.Message, 0);
            Finish();
            return;
        }
        Arm();
    }

    private ulong Token(OpKind kind) => UserData.Encode(kind, _slot, _generation);

    private bool Multishot => (_loop.Features & RingFeatures.MultishotAccept) != 0;

    private void Arm()
    {
        if (_armed || _stopping || _backingOff || _slot < 0 || !_listener.HasRoom) return;
        if (Multishot)
            _loop.Ring.PrepareAcceptMultishot(_fd, AcceptFlags, Token(OpKind.Accept));
        else
            unsafe { _loop.Ring.PrepareAccept(_fd, null, null, AcceptFlags, Token(OpKind.Accept)); }
        _armed = true;
        _cancelling = false;
    }

    /// <summary>The accept queue has room again; on the loop thread.</summary>
    public void Resume() => Arm();

    public void OnCompletion(OpKind kind, in Completion completion)
    {
        if (kind != OpKind.Accept) return; // cancel results
        if (!completion.HasMore) _armed = false;

        if (completion.Result >= 0)
        {
            _backoffMs = 0;
            _listener.OnAccepted(completion.Result, _loop);
            if (_armed && !_cancelling && !_listener.HasRoom)
            {
                // The queue is full: stop taking connections until Kestrel accepts some.
                _cancelling = true;
                _loop.Ring.PrepareCancel(Token(OpKind.Accept), Token(OpKind.Cancel));
            }
            if (!_armed)
            {
                if (_stopping) Finish(); // its last accept (no More) came instead of the cancel's
                else Arm();
            }
            return;
        }

        if (_stopping || completion.Result == -Errno.ECANCELED)
        {
            if (_stopping || !_loop.IsRunning) Finish();
            else Arm(); // cancelled for a full queue: re-armed once there is room
            return;
        }

        switch (-completion.Result)
        {
            case Errno.ECONNABORTED: // the peer gave up while queued: not our problem
            case Errno.EINTR:
            case Errno.EAGAIN:
                Arm();
                break;
            default:
                // EMFILE, ENFILE, ENOBUFS, ENOMEM...: keep serving what is open, try again later.
                ArmAfterBackoff(Errno.Describe(completion.Result));
                break;
        }
    }

    /// <summary>
    /// Handling an accept threw (already logged by the loop): re-arm after the same back-off as for
    /// accept errors, so a fault that repeats on every connection cannot spin the loop.
    /// </summary>
    public void OnHandlerFault(Exception error)
    {
        if (_armed) return;
        if (_stopping) Finish();
        else ArmAfterBackoff(error.GetType().Name);
    }

    private void ArmAfterBackoff(string reason)
    {
        _backoffMs = Math.Clamp(_backoffMs * 2, 10, 1000);
        _backingOff = true;
        UringLog.AcceptFailed(_loop.Logger, _listener.EndPoint, reason, _backoffMs);
        _ = Task.Delay(_backoffMs).ContinueWith(static (_, state) =>
        {
            var acceptor = (Acceptor)state!;
            acceptor._loop.Post(static s =>
            {
                var a = (Acceptor)s!;
                a._backingOff = false;
                a.Arm();
            }, acceptor, static _ => { }); // a stopped loop has closed the listener already
        }, this, TaskScheduler.Default);
    }

    /// <summary>Stops accepting: cancels the accept, then closes the listening socket; on the loop thread.</summary>
    public void StopOnLoop()
    {
        if (_stopping) return;
        _stopping = true;
        if (_armed) _loop.Ring.PrepareCancel(Token(OpKind.Accept), Token(OpKind.Cancel));
        else Finish();
    }

    public void OnLoopStopping() => StopOnLoop();

    /// <summary>
    /// The loop is exiting (or stopped before this started): close the listening socket and report
    /// stopped. When the loop failed rather than stopped, a listener still bound goes on accepting on
    /// a healthy loop instead: the socket is handed over, not closed.
    /// </summary>
    public void OnLoopStopped(string reason)
    {
        _stopping = true;
        _armed = false;
        _slot = -1;
        if (_loop.Faulted && Interlocked.Exchange(ref _finished, 1) == 0)
        {
            if (_listener.TryRehome(_fd, _loop))
            {
                _stopped.TrySetResult();
                return;
            }
            Volatile.Write(ref _finished, 0);
        }
        Finish();
    }

    private void Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) != 0) return;
        if (_slot >= 0)
        {
            _loop.RemoveHandler(_slot);
            _slot = -1;
        }
        NativeSocket.Close(_fd);
        _stopped.TrySetResult();
    }
}
