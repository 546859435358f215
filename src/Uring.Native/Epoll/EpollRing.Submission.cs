using System.Runtime.InteropServices;
using Uring.Native.Epoll;
using Uring.Native.Interop;
using static Uring.Native.Linux;

namespace Uring.Native;

// Submission, the per-fd pending lists, readiness dispatch, the fd bookkeeping of close, and the
// completion of operations. What each operation does is in its file under Ops/.
internal sealed unsafe partial class EpollRing
{
    internal enum Outcome : byte
    {
        Completed,  // final completion posted: retire the record
        Pending,    // would block: wait for the next edge
        Capped,     // multishot used its budget with more to do: replay without waiting
    }

    private int SubmitQueued()
    {
        int count = _submissionCount;
        int i = 0;
        try
        {
            for (; i < count; i++)
            {
                int id = _submissions[i];
                _ops[id].Issue(this, id);
            }
        }
        catch
        {
            // (Out of memory growing a table.) What was issued, and the one that threw, count as
            // taken, as the kernel's consumed SQEs do: issued twice, a close could close an fd
            // number that is someone else's by then. The rest stay queued for the next submit.
            int next = i + 1;
            Array.Copy(_submissions, next, _submissions, 0, count - next);
            _submissionCount = count - next;
            throw;
        }
        _submissionCount = 0;
        return count;
    }

    // FAST_POLL, emulated: register, try at once without blocking, park on the fd only on EAGAIN.
    private static void IssueOnFd(EpollRing ring, int id) => ring.IssueOnFd(id);

    private void IssueOnFd(int id)
    {
        ref PendingOperation op = ref _ops[id];
        int fd = op.Fd;
        if (fd < 0 || fd == _epollFd || fd == _wakeFd)
        {
            CompleteNow(id, -Errno.EBADF);
            return;
        }

        ref FdState state = ref _fds[fd];
        bool idle = state.Head == 0;
        // Accept and connect would block the loop on a blocking fd, so the fd is checked (and its
        // registration refreshed) before the first try; recv/send use MSG_DONTWAIT and need neither.
        bool needsNonBlocking = (op.Flags & OperationFlags.NeedsNonBlocking) != 0;
        bool armed = false;
        int armError = 0;
        if ((state.Flags & FdFlags.Registered) == 0 || (idle && needsNonBlocking))
        {
            armError = Arm(fd, ref state);
            armed = true;
        }
        if (needsNonBlocking && (state.Flags & FdFlags.NonBlocking) == 0 && NativeSocket.SetNonBlocking(fd, true) == 0)
            state.Flags |= FdFlags.NonBlocking;

        // Per direction, first come first served: a newcomer must not take bytes (or buffer space)
        // ahead of an operation already waiting. It runs right after that one, on the same edge.
        if (!idle && MustQueueBehind(ref state, ref op))
        {
            Park(ref state, id);
            return;
        }

        Outcome outcome = op.Attempt(this, ref op, 0);
        if (outcome == Outcome.Completed)
        {
            Retire(id);
            return;
        }
        // The fd may have been closed outside the ring and its number reused since we registered it:
        // refresh the registration when an idle fd starts waiting. Existing readiness is reported, so no edge is lost.
        if (idle && !armed) armError = Arm(fd, ref state);
        if (armError != 0)
        {
            // Nothing would ever wake it (regular files give EPERM): fail it rather than hang.
            Finish(ref op, armError);
            Retire(id);
            return;
        }
        Park(ref state, id);
        if (outcome == Outcome.Capped) MarkReady(fd, ref state, op.Interest);
    }

    private bool MustQueueBehind(ref FdState state, ref PendingOperation op)
    {
        uint direction = op.Interest & (EPOLLIN | EPOLLOUT);
        for (int other = state.Head; other != 0; other = _ops[other].Next)
            if ((_ops[other].Interest & direction) != 0) return true;
        return false;
    }

    // Retries the fd's waiting operations, in submission order, that the events can let progress.
    // fromEvent: mask is what epoll just reported; otherwise it is a replay.
    private void RunFd(int fd, uint mask, bool fromEvent)
    {
        uint trigger = (mask & Failure) != 0 ? mask | InInterest | OutInterest : mask;
        uint capped = 0;
        int id = _fds[fd].Head;
        while (id != 0)
        {
            ref PendingOperation op = ref _ops[id];
            int next = op.Next;
            Outcome outcome = Outcome.Pending;
            if ((op.Interest & trigger) != 0 && (op.Interest & capped) == 0)
                outcome = op.Attempt(this, ref op, fromEvent ? mask : 0);

            if (outcome == Outcome.Completed)
            {
                Retire(id);
            }
            else if (outcome == Outcome.Capped)
            {
                // Later ops in the same direction wait for the replay, so order holds.
                capped |= op.Interest & (EPOLLIN | EPOLLOUT);
            }
            id = next;
        }
        if (capped != 0) MarkReady(fd, ref _fds[fd], mask & (capped | EPOLLRDHUP | Failure));
    }

    // Moves fd's pending operations onto a dup of it (an orphan, closed when the last one ends).
    private bool KeepFileForPendingOperations(int fd)
    {
        int keeper = Libc.fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (keeper < 0) return false;
        int head = _fds[fd].Head, tail = _fds[fd].Tail;
        FdFlags inherited = _fds[fd].Flags & FdFlags.NonBlocking;
        _fds[fd].Head = _fds[fd].Tail = 0;
        ref FdState kept = ref _fds[keeper]; // may grow the table: no ref to fd's state is held across it
        kept.Head = head;
        kept.Tail = tail;
        kept.Flags = (kept.Flags & FdFlags.ReadyListed) | inherited | FdFlags.Orphan;
        for (int op = head; op != 0; op = _ops[op].Next) _ops[op].Fd = keeper;
        if (Arm(keeper, ref kept) != 0) // ADD reports the readiness that already exists: no edge is lost
        {
            CancelOnFd(keeper); // nothing would ever wake them on the dup: end them (the last closes it)
        }
        return true;
    }

    // Drops fd from the epoll set and its state: the number is about to be closed and may be reused.
    private void Forget(int fd)
    {
        ref FdState state = ref _fds[fd];
        if ((state.Flags & FdFlags.Registered) != 0)
        {
            var unused = default(EpollEvent);
            Libc.epoll_ctl(_epollFd, EPOLL_CTL_DEL, fd, &unused);
        }
        state.Flags &= FdFlags.ReadyListed; // keep the still-ready list link intact
    }

    // An orphan whose last operation ended: its file is closed now, as the kernel's last reference drop would.
    private void CloseIfOrphanDone(int fd)
    {
        if ((uint)fd >= (uint)_fds.Length) return;
        ref FdState state = ref _fds[fd];
        if ((state.Flags & FdFlags.Orphan) == 0 || state.Head != 0) return;
        Forget(fd);
        NativeSocket.Close(fd);
    }

    private void CloseOrphans()
    {
        for (int fd = 0; fd < _fds.Length; fd++)
            if ((_fds[fd].Flags & FdFlags.Orphan) != 0) NativeSocket.Close(fd);
    }

    // Ends every operation pending on fd with -ECANCELED.
    private void CancelOnFd(int fd)
    {
        if ((uint)fd >= (uint)_fds.Length) return;
        int id = _fds[fd].Head;
        while (id != 0)
        {
            int next = _ops[id].Next;
            Cancel(id);
            id = next;
        }
    }

    // One non-blocking try of the operation's syscall, again on EINTR: EAGAIN waits for the next
    // edge, any other result completes the operation.
    private Outcome TryOnce(ref PendingOperation op, delegate*<ref PendingOperation, int> syscall)
    {
        int result;
        do result = syscall(ref op);
        while (result == -Errno.EINTR);
        return result == -Errno.EAGAIN ? Outcome.Pending : Finish(ref op, result);
    }

    private void Cancel(int id)
    {
        Finish(ref _ops[id], -Errno.ECANCELED);
        Retire(id);
    }

    private void CompleteNow(int id, int result)
    {
        Finish(ref _ops[id], result);
        Retire(id);
    }

    // Posts an operation's final completion.
    private Outcome Finish(ref PendingOperation op, int result, uint flags = 0)
    {
        if ((op.Flags & OperationFlags.ZeroCopy) != 0)
        {
            // SENDMSG_ZC always completes twice: the result flagged More, then the notification that
            // the memory is free (the emulation always copied, and says so).
            _completions.Add(op.UserData, result, flags | CompletionFlags.More);
            _completions.Add(op.UserData, unchecked((int)CompletionFlags.ZeroCopyCopied), CompletionFlags.Notification);
        }
        else
        {
            _completions.Add(op.UserData, result, flags);
        }
        return Outcome.Completed;
    }

    // Appends the operation to its fd's list and to the user_data index.
    private void Park(ref FdState state, int id)
    {
        ref PendingOperation op = ref _ops[id];
        op.Previous = state.Tail;
        op.Next = 0;
        if (state.Tail != 0) _ops[state.Tail].Next = id;
        else state.Head = id;
        state.Tail = id;
        op.Flags |= OperationFlags.Linked | OperationFlags.Indexed;

        op.NextSameUserData = 0;
        ref int first = ref CollectionsMarshal.GetValueRefOrAddDefault(_byUserData, op.UserData, out bool exists);
        if (!exists)
        {
            first = id;
            return;
        }
        int last = first;
        while (_ops[last].NextSameUserData != 0) last = _ops[last].NextSameUserData;
        _ops[last].NextSameUserData = id;
    }

    // Unlinks the operation from wherever it is parked and returns its record to the pool.
    private void Retire(int id)
    {
        ref PendingOperation op = ref _ops[id];
        int orphanCheck = -1;
        if ((op.Flags & OperationFlags.Linked) != 0)
        {
            ref FdState state = ref _fds[op.Fd];
            if (op.Previous != 0) _ops[op.Previous].Next = op.Next;
            else state.Head = op.Next;
            if (op.Next != 0) _ops[op.Next].Previous = op.Previous;
            else state.Tail = op.Previous;
            if (state.Head == 0 && (state.Flags & FdFlags.Orphan) != 0) orphanCheck = op.Fd;
        }
        if ((op.Flags & OperationFlags.Indexed) != 0)
        {
            ref int first = ref CollectionsMarshal.GetValueRefOrNullRef(_byUserData, op.UserData);
            if (first == id)
            {
                if (op.NextSameUserData == 0) _byUserData.Remove(op.UserData);
                else first = op.NextSameUserData;
            }
            else
            {
                int previous = first;
                while (_ops[previous].NextSameUserData != id) previous = _ops[previous].NextSameUserData;
                _ops[previous].NextSameUserData = op.NextSameUserData;
            }
        }
        _ops.Free(id);
        if (orphanCheck >= 0) CloseIfOrphanDone(orphanCheck);
    }
}
