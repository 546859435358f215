using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One listening socket on one loop, with a multishot accept armed. Accept errors such as EMFILE
/// are logged and the accept is re-armed after a back-off; the loop goes on.
/// </summary>
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
    private bool _stopping;
    private int _backoffMs;

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

    /// <summary>Registers with the loop and arms the accept; on the loop thread.</summary>
    public void StartOnLoop()
    {
        if (_stopping) return;
        (_slot, _generation) = _loop.AddHandler(this);
        Arm();
    }

    private ulong Token(OpKind kind) => UserData.Encode(kind, _slot, _generation);

    private void Arm()
    {
        if (_armed || _stopping) return;
        _loop.Ring.PrepareAcceptMultishot(_fd, AcceptFlags, Token(OpKind.Accept));
        _armed = true;
    }

    public void OnCompletion(OpKind kind, in Completion completion)
    {
        if (kind != OpKind.Accept) return; // cancel results
        if (!completion.HasMore) _armed = false;

        if (completion.Result >= 0)
        {
            _backoffMs = 0;
            _listener.OnAccepted(completion.Result, _loop);
            if (!completion.HasMore) Arm();
            return;
        }

        if (_stopping || completion.Result == -Errno.ECANCELED)
        {
            if (_stopping) Finish();
            else Arm();
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
        if (!_armed && !_stopping) ArmAfterBackoff(error.GetType().Name);
    }

    private void ArmAfterBackoff(string reason)
    {
        _backoffMs = Math.Clamp(_backoffMs * 2, 10, 1000);
        UringLog.AcceptFailed(_loop.Logger, _listener.EndPoint, reason, _backoffMs);
        _ = Task.Delay(_backoffMs).ContinueWith(static (_, state) =>
        {
            var acceptor = (Acceptor)state!;
            acceptor._loop.Schedule(static s => ((Acceptor)s!).Arm(), acceptor);
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

    /// <summary>The loop stopped (its ring is gone): close the listening socket and report stopped.</summary>
    public void OnLoopStopped()
    {
        _slot = -1;
        Finish();
    }

    private void Finish()
    {
        if (_slot >= 0)
        {
            _loop.RemoveHandler(_slot);
            _slot = -1;
        }
        NativeSocket.Close(_fd);
        _stopped.TrySetResult();
    }
}
