using System.Net;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One listening socket on one loop, with its accept armed (<see cref="AcceptOperation"/>). Accept
/// errors such as ENOMEM are logged and the accept re-armed after a back-off; near the fd limit it
/// accepts one connection at a time, each sure of a free fd number short of the runtime's reserve,
/// and pauses when there is none (<see cref="FdHeadroom"/>); the loop goes on. While the listener's
/// accept queue is full, no accept is armed (the kernel's backlog holds new connections).
/// </summary>
/// <remarks>
/// The listening fd is owned here from <see cref="StartOnLoop"/>: closed exactly once, by
/// <see cref="Finish"/>, or handed on to another loop when this one fails (the socket then stays
/// in its reuseport group, so the steering program's indices stay those of our sockets).
/// </remarks>
internal sealed class Acceptor : ILoopMember
{
    private readonly UringConnectionListener _listener;
    private readonly IoLoop _loop;
    private readonly int _fd;
    private readonly AcceptOperation _accept;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _joined;
    private bool _cancelling;     // a cancel of the armed accept is queued (full queue, fd pause)
    private bool _stopping;
    private bool _backingOff;
    private bool _pausedForFds;
    private bool _holdsSlot;      // the armed accept is single-shot, with its fd number below the reserve (FdHeadroom)
    private bool _multishot;      // the armed accept is multishot
    private int _backoffMs;
    private int _finished;

    public Acceptor(UringConnectionListener listener, IoLoop loop, int fd)
    {
        _listener = listener;
        _loop = loop;
        _fd = fd;
        _accept = new AcceptOperation(this, loop);
    }

    public IoLoop Loop => _loop;

    public EndPoint EndPoint => _listener.EndPoint;

    public Task Stopped => _stopped.Task;

    public int MemberIndex { get; set; } = -1;

    /// <summary>Joins the loop and arms the accept; on the loop thread.</summary>
    public void StartOnLoop()
    {
        if (_stopping || !_loop.IsRunning)
        {
            // Handed to a loop that is stopping: to another one if this one failed, else nothing to accept for.
            OnLoopStopped("The I/O loop stopped before the listener started.");
            return;
        }
        _loop.Members.Add(this);
        _joined = true;
        FdHeadroom.AcceptorAdded(this, _listener.Backlog); // until Finish, or the hand-over to another loop
        Arm();
    }

    private void Arm()
    {
        if (_accept.InKernel || _stopping || _backingOff || _pausedForFds || !_joined || !_listener.HasRoom) return;
        FdHeadroom.ReadLimit();
        long closes = FdHeadroom.Closes;
        bool multishot = (_loop.Features & RingFeatures.MultishotAccept) != 0 && FdHeadroom.RoomForRound(_fd);
        if (!multishot)
        {
            // Near the reserve: single-shot, each sure of a free number below it before it is armed.
            if (!FdHeadroom.TryTakeSlot(_fd, out int open))
            {
                PauseForFds(open, closes);
                return;
            }
            _holdsSlot = true;
        }
        if (_accept.Start(_fd, multishot))
        {
            _cancelling = false;
            _multishot = multishot;
        }
        else
        {
            ReleaseSlot(); // not queued: the fault path re-arms after a back-off
        }
    }

    private void ReleaseSlot()
    {
        if (!_holdsSlot) return;
        _holdsSlot = false;
        FdHeadroom.ReleaseSlot();
    }

    private void CancelAccept()
    {
        if (_accept.InKernel && !_cancelling && _loop.Operations.Cancel(_accept.UserData, this)) _cancelling = true;
    }

    /// <summary>The accept queue has room again; on the loop thread.</summary>
    public void Resume() => Arm();

    /// <summary>A multishot round no longer fits below the fd reserve: single-shot from the next arm. Any thread.</summary>
    public void DropMultishot() => _loop.Post(static a =>
    {
        var acceptor = (Acceptor)a!;
        if (acceptor._multishot) acceptor.CancelAccept(); // its completion re-arms
    }, this, static _ => { });

    /// <summary>The fd pause is over (a connection closed, or its cap passed). Any thread.</summary>
    public void ResumeAfterPause() => _loop.Post(static a =>
    {
        var acceptor = (Acceptor)a!;
        acceptor._pausedForFds = false;
        acceptor.Arm();
    }, this, static _ => { }); // a stopped loop has closed the listener already

    /// <summary>An accept's completion: an accepted fd, or the errno that ended the accept.</summary>
    public void OnAccept(int result, bool final)
    {
        if (final)
        {
            ReleaseSlot();
            _multishot = false;
        }
        if (result >= 0)
        {
            _backoffMs = 0;
            FdHeadroom.Accepted(result);
            _listener.OnAccepted(result, _loop);
            if (!final && (!_listener.HasRoom || !FdHeadroom.RoomForRound()))
            {
                // The queue is full: stop taking connections until Kestrel accepts some. Or near the
                // reserve: another multishot round could take a whole backlog; single-shot from now on.
                CancelAccept();
            }
            if (final)
            {
                if (_stopping) Finish(); // its last accept (no More) came instead of the cancel's
                else Arm();
            }
            return;
        }

        if (_stopping || result == -Errno.ECANCELED)
        {
            if (_stopping) Finish();
            else if (_loop.IsRunning) Arm(); // cancelled for a full queue or a pause: re-armed once it is over
            // else the loop failed (this was its synchronous cancel): OnLoopStopped hands the socket on
            return;
        }

        switch (-result)
        {
            case Errno.ECONNABORTED: // the peer gave up while queued: not our problem
            case Errno.EINTR:
            case Errno.EAGAIN:
                Arm();
                break;
            case Errno.EMFILE:
            case Errno.ENFILE:
                PauseForFds(-1, FdHeadroom.Closes);
                break;
            default:
                // ENOBUFS, ENOMEM...: keep serving what is open, try again later.
                ArmAfterBackoff(Errno.Describe(result));
                break;
        }
    }

    // At the edge of the fd table: no accept until a connection of the process closes (or the cap).
    // open: the fds open at least, or -1 after EMFILE; closes: FdHeadroom.Closes before the look.
    private void PauseForFds(int open, long closes)
    {
        _pausedForFds = true;
        CancelAccept();
        FdHeadroom.Pause(this, open, closes, _loop.Logger);
    }

    /// <summary>
    /// Handling an accept threw (already logged by the loop), or the accept could not be queued:
    /// re-arm after the same back-off as for accept errors, so a fault that repeats cannot spin the loop.
    /// </summary>
    public void OnFault(Exception error)
    {
        if (_accept.InKernel)
        {
            // Its cancel could not be queued: ask again, or a stop, a full queue or an fd pause would wait for ever.
            if (!_cancelling && (_stopping || _pausedForFds || !_listener.HasRoom)) CancelAccept();
            return;
        }
        ReleaseSlot();
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
        if (_accept.InKernel) CancelAccept();
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
        if (_loop.Faulted && Interlocked.Exchange(ref _finished, 1) == 0)
        {
            if (_listener.TryRehome(_fd, _loop))
            {
                if (_joined) FdHeadroom.AcceptorRemoved(this, _listener.Backlog); // the new acceptor counts its round
                ReleaseSlot();
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
        if (_joined)
        {
            _loop.Members.Remove(this);
            FdHeadroom.AcceptorRemoved(this, _listener.Backlog);
        }
        ReleaseSlot();
        NativeSocket.Close(_fd);
        _stopped.TrySetResult();
    }
}
