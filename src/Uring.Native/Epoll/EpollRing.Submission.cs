using System.Runtime.InteropServices;
using Uring.Native.Epoll;
using Uring.Native.Interop;
using static Uring.Native.Linux;

namespace Uring.Native;

// Submission, the per-fd pending lists, readiness dispatch, cancellation and close.
public sealed unsafe partial class EpollRing
{
    private const int F_GETFD = 1;

    private enum Outcome : byte
    {
        Completed,  // final completion posted: retire the record
        Pending,    // would block: wait for the next edge
        Capped,     // multishot used its budget with more to do: replay without waiting
    }

    private const int F_DUPFD_CLOEXEC = 1030;

    private int SubmitQueued()
    {
        int count = _submissionCount;
        for (int i = 0; i < count; i++) Issue(_submissions[i]);
        _submissionCount = 0;
        return count;
    }

    private void Issue(int id)
    {
        ref PendingOperation op = ref _ops[id];
        switch (op.Opcode)
        {
            case IoUringOp.Nop:
                CompleteNow(id, 0);
                break;
            case IoUringOp.Close:
                IssueClose(id);
                break;
            case IoUringOp.Shutdown:
                CompleteNow(id, NativeSocket.Shutdown(op.Fd, op.Length));
                break;
            case IoUringOp.AsyncCancel:
                IssueCancel(id);
                break;
            default:
                IssueOnFd(id);
                break;
        }
    }

    // FAST_POLL, emulated: register, try at once without blocking, park on the fd only on EAGAIN.
    private void IssueOnFd(int id)
    {
        ref PendingOperation op = ref _ops[id];
        int fd = op.Fd;
        if (fd < 0 || fd == _epollFd || fd == _wakeFd)
        {
            CompleteNow(id, -Errno.EBADF);
            return;
        }
        if (op.Opcode is IoUringOp.SendZc or IoUringOp.WriteFixed && !FixedBufferInRange(ref op))
        {
            CompleteNow(id, -Errno.EFAULT);
            return;
        }

        ref FdState state = ref _fds[fd];
        bool idle = state.Head == 0;
        // These would block the loop on a blocking fd, so the fd is checked (and its registration
        // refreshed) before the first try; recv/send use MSG_DONTWAIT and need neither.
        bool needsNonBlocking = op.Opcode is IoUringOp.Accept or IoUringOp.Connect or IoUringOp.Read;
        bool isPoll = op.Opcode == IoUringOp.PollAdd;
        bool armed = false;
        int armError = 0;
        if ((state.Flags & FdFlags.Registered) == 0 || (idle && (needsNonBlocking || isPoll)))
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

        // ADD/MOD queue an event for readiness that already exists: a poll that just armed the fd gets
        // its first answer from that event (asking poll(2) as well would post it twice).
        Outcome outcome = isPoll && armed && armError == 0 ? Outcome.Pending : Attempt(ref op, observed: 0);
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
        if (op.Opcode == IoUringOp.PollAdd) return false; // a poll consumes nothing
        uint direction = op.Interest & (EPOLLIN | EPOLLOUT);
        for (int other = state.Head; other != 0; other = _ops[other].Next)
        {
            ref PendingOperation waiting = ref _ops[other];
            if (waiting.Opcode != IoUringOp.PollAdd && (waiting.Interest & direction) != 0) return true;
        }
        return false;
    }

    // Retries the fd's waiting operations, in submission order, that the events can let progress.
    // fromEvent: mask is what epoll just reported (polls complete from it); otherwise it is a replay.
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
            if (op.Opcode == IoUringOp.PollAdd)
            {
                if (fromEvent) outcome = PollReady(ref op, mask);
            }
            else if ((op.Interest & trigger) != 0 && (op.Interest & capped) == 0)
            {
                outcome = Attempt(ref op, fromEvent ? mask : 0);
            }

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

    // As the kernel: in-flight requests hold their own reference to the file, so IORING_OP_CLOSE only
    // drops the number. They neither end nor lose their socket (no FIN goes out) until they complete
    // or are cancelled by user_data. The emulation keeps the file the same way, under a dup.
    private void IssueClose(int id)
    {
        int fd = _ops[id].Fd;
        if (fd == _epollFd || fd == _wakeFd)
        {
            CompleteNow(id, -Errno.EBADF); // io_uring likewise refuses to close its own ring fd
            return;
        }
        if ((uint)fd < (uint)_fds.Length)
        {
            if (_fds[fd].Head != 0 && !KeepFileForPendingOperations(fd))
                CancelOnFd(fd, all: true); // no fd left to keep the file with: end them rather than strand them
            Forget(fd);
        }
        CompleteNow(id, NativeSocket.Close(fd));
    }

    // Moves fd's pending operations onto a dup of it (an orphan, closed when the last one ends).
    private bool KeepFileForPendingOperations(int fd)
    {
        int keeper = Libc.fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (keeper < 0) return false;
        int head = _fds[fd].Head, tail = _fds[fd].Tail;
        FdFlags inherited = _fds[fd].Flags & (FdFlags.NonBlocking | FdFlags.NotSeekable);
        _fds[fd].Head = _fds[fd].Tail = 0;
        ref FdState kept = ref _fds[keeper]; // may grow the table: no ref to fd's state is held across it
        kept.Head = head;
        kept.Tail = tail;
        kept.Flags = (kept.Flags & FdFlags.ReadyListed) | inherited | FdFlags.Orphan;
        for (int op = head; op != 0; op = _ops[op].Next) _ops[op].Fd = keeper;
        if (Arm(keeper, ref kept) != 0) // ADD reports the readiness that already exists: no edge is lost
        {
            CancelOnFd(keeper, all: true); // nothing would ever wake them on the dup: end them (the last closes it)
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

    // The kernel posts the cancel's own completion first, then each target's -ECANCELED: so do we.
    private void IssueCancel(int id)
    {
        ref PendingOperation op = ref _ops[id];
        if ((op.Flags & OperationFlags.CancelAny) != 0)
        {
            var targets = new List<int>();
            foreach (int first in _byUserData.Values)
                for (int target = first; target != 0; target = _ops[target].NextSameUserData) targets.Add(target);
            CompleteNow(id, targets.Count);
            foreach (int target in targets) Cancel(target);
        }
        else if ((op.Flags & OperationFlags.CancelByFd) != 0)
        {
            int fd = op.Fd;
            bool all = (op.Flags & OperationFlags.CancelAll) != 0;
            int count = CountOnFd(fd, all);
            int result;
            if (count > 0) result = all ? count : 0;
            else if (Libc.fcntl(fd, F_GETFD, 0) < 0) result = -Errno.EBADF; // the kernel resolves the fd first
            else result = all ? 0 : -Errno.ENOENT; // __io_async_cancel: with ALL the count, even 0
            CompleteNow(id, result);
            CancelOnFd(fd, all);
        }
        else if (_byUserData.TryGetValue(op.Argument, out int target))
        {
            // Several pending ops may share a user_data: like the kernel without _ALL, cancel one.
            CompleteNow(id, 0);
            Cancel(target);
        }
        else
        {
            CompleteNow(id, -Errno.ENOENT);
        }
    }

    private int CountOnFd(int fd, bool all)
    {
        if ((uint)fd >= (uint)_fds.Length) return 0;
        int count = 0;
        for (int id = _fds[fd].Head; id != 0 && (all || count == 0); id = _ops[id].Next) count++;
        return count;
    }

    private int CancelOnFd(int fd, bool all)
    {
        if ((uint)fd >= (uint)_fds.Length) return 0;
        int count = 0;
        int id = _fds[fd].Head;
        while (id != 0)
        {
            int next = _ops[id].Next;
            Cancel(id);
            count++;
            if (!all) break;
            id = next;
        }
        return count;
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
        if (op.Opcode is IoUringOp.SendZc or IoUringOp.SendMsgZc)
        {
            // SEND(MSG)_ZC always completes twice: the result flagged More, then the notification that
            // the memory is free (the emulation always copied, and says so when asked).
            _completions.Add(op.UserData, result, flags | CompletionFlags.More);
            int usage = (op.Flags & OperationFlags.ReportUsage) != 0 ? unchecked((int)CompletionFlags.ZeroCopyCopied) : 0;
            _completions.Add(op.UserData, usage, CompletionFlags.Notification);
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

    private bool FixedBufferInRange(ref PendingOperation op)
    {
        long index = (long)op.Argument;
        if (index < 0) return true; // not a fixed-buffer send
        IoVec[]? buffers = _fixedBuffers;
        if (buffers is null || index >= buffers.Length) return false;
        nuint start = (nuint)buffers[index].Base, end = start + buffers[index].Length;
        nuint from = (nuint)op.Buffer;
        return from >= start && from + (nuint)op.Length <= end;
    }
}
