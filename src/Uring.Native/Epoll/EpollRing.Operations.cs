using Uring.Native.Epoll;
using Uring.Native.Interop;
using static Uring.Native.Linux;

namespace Uring.Native;

// Each opcode as a readiness-driven syscall: one non-blocking try, EAGAIN means "wait for the next edge".
// Results are the kernel's: >= 0, or -errno.
public sealed unsafe partial class EpollRing
{
    private const int AcceptFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    private const int SendFlags = MSG_DONTWAIT | MSG_NOSIGNAL; // io_uring always adds MSG_NOSIGNAL
    private const int MSG_PEEK = 0x2;
    private const int SO_TYPE = 3;
    private const int SOCK_SEQPACKET = 5;
    private const int POLLNVAL = 0x20;
    private const int ESPIPE = 29;

    // observed: the epoll mask that woke the op, or 0 when unknown (first try, replay, close).
    private Outcome Attempt(ref PendingOperation op, uint observed) => op.Opcode switch
    {
        IoUringOp.Accept => (op.Flags & OperationFlags.Multishot) != 0 ? AcceptMultishot(ref op) : Accept(ref op),
        IoUringOp.Recv => (op.Flags & OperationFlags.BufferSelect) != 0 ? RecvSelect(ref op, observed) : Recv(ref op),
        IoUringOp.Send or IoUringOp.SendZc or IoUringOp.WriteFixed => Send(ref op),
        IoUringOp.SendMsg or IoUringOp.SendMsgZc => SendMsg(ref op),
        IoUringOp.Connect => Connect(ref op, observed),
        IoUringOp.Read => Read(ref op),
        IoUringOp.PollAdd => Poll(ref op),
        _ => Finish(ref op, -Errno.EINVAL),
    };

    private Outcome Accept(ref PendingOperation op)
    {
        int result;
        do result = Libc.Result(Libc.accept4(op.Fd, op.Buffer, op.AddressLength, op.MessageFlags | AcceptFlags));
        while (result == -Errno.EINTR);
        return result == -Errno.EAGAIN ? Outcome.Pending : Finish(ref op, result);
    }

    // IORING_ACCEPT_MULTISHOT: one More-flagged completion per connection; any error but EAGAIN ends it.
    private Outcome AcceptMultishot(ref PendingOperation op)
    {
        for (int budget = MultishotBudget; budget > 0;)
        {
            int result = Libc.Result(Libc.accept4(op.Fd, null, null, op.MessageFlags | AcceptFlags));
            if (result >= 0)
            {
                _completions.Add(op.UserData, result, CompletionFlags.More);
                budget--;
            }
            else if (result == -Errno.EAGAIN)
            {
                return Outcome.Pending;
            }
            else if (result != -Errno.EINTR)
            {
                return Finish(ref op, result);
            }
        }
        return Outcome.Capped;
    }

    private Outcome Recv(ref PendingOperation op)
    {
        while (true)
        {
            int result = Libc.Result(Libc.recv(op.Fd, op.Buffer + op.Done, (nuint)(op.Length - op.Done), op.MessageFlags | MSG_DONTWAIT));
            if (result == -Errno.EINTR) continue;
            if (result == -Errno.EAGAIN) return Outcome.Pending;
            if (result > 0 && GathersMore(ref op, result)) continue;
            return Finish(ref op, Total(ref op, result));
        }
    }

    // Buffer select, single or multishot: the buffer comes from the group's provided-buffer ring.
    private Outcome RecvSelect(ref PendingOperation op, uint observed)
    {
        bool multishot = (op.Flags & OperationFlags.Multishot) != 0;
        ProvidedBufferRing? ring = op.BufferGroup < _bufferRings.Length ? _bufferRings[op.BufferGroup] : null;
        bool received = false;
        for (int budget = MultishotBudget; ;)
        {
            if (ring is null || !ring.TryTake(out ushort bufferId))
            {
                // After a receive the kernel only goes on when it knows more is queued; it does not fail an op that would just wait.
                if (received && NothingQueued(op.Fd)) return Outcome.Pending;
                return Finish(ref op, -Errno.ENOBUFS); // final: the caller re-arms once buffers are back
            }
            int length = op.Length > 0 && op.Length < ring.BufferSize ? op.Length : ring.BufferSize; // sqe->len caps a buffer-select recv
            int result = Libc.Result(Libc.recv(op.Fd, ring.GetBuffer(bufferId), (nuint)length, op.MessageFlags | MSG_DONTWAIT));
            if (result <= 0)
            {
                // The kernel leaves the buffer in the ring when nothing was received (EOF and errors carry no buffer).
                ring.Recycle(bufferId);
                if (result == -Errno.EINTR) continue;
                return result == -Errno.EAGAIN ? Outcome.Pending : Finish(ref op, result);
            }

            uint flags = CompletionFlags.Buffer | ((uint)bufferId << CompletionFlags.BufferShift);
            if (!multishot) return Finish(ref op, result, flags);
            _completions.Add(op.UserData, result, flags | CompletionFlags.More);
            received = true;
            if (result < ring.BufferSize && Drained(ref op, observed)) return Outcome.Pending;
            if (--budget == 0) return Outcome.Capped;
        }
    }

    // A short read from a stream socket emptied its queue, and whatever arrives later raises a new edge:
    // skip the recv that would only say EAGAIN. Not when epoll reported a FIN or an error, which are
    // seen only by reading on, nor when we were not woken by an edge (first try, replay).
    private static bool Drained(ref PendingOperation op, uint observed) =>
        observed != 0 && (observed & (EPOLLRDHUP | Failure)) == 0 && IsByteStream(ref op);

    private static bool NothingQueued(int fd)
    {
        byte probe;
        int result;
        do result = Libc.Result(Libc.recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT));
        while (result == -Errno.EINTR);
        return result == -Errno.EAGAIN;
    }

    private Outcome Send(ref PendingOperation op)
    {
        while (true)
        {
            int result = Libc.Result(Libc.send(op.Fd, op.Buffer + op.Done, (nuint)(op.Length - op.Done), op.MessageFlags | SendFlags));
            if (result == -Errno.EINTR) continue;
            if (result == -Errno.EAGAIN) return Outcome.Pending;
            if (result > 0 && GathersMore(ref op, result)) continue;
            return Finish(ref op, Total(ref op, result)); // a short send is the caller's to finish, as with io_uring
        }
    }

    private Outcome SendMsg(ref PendingOperation op)
    {
        int result;
        do result = Libc.Result(Libc.sendmsg(op.Fd, (MsgHdr*)op.Buffer, op.MessageFlags | SendFlags));
        while (result == -Errno.EINTR);
        return result == -Errno.EAGAIN ? Outcome.Pending : Finish(ref op, result);
    }

    private Outcome Connect(ref PendingOperation op, uint observed)
    {
        if ((op.Flags & OperationFlags.ConnectInProgress) == 0)
        {
            int result = Libc.Result(Libc.connect(op.Fd, op.Buffer, op.Length));
            if (result == -Errno.EINPROGRESS || result == -Errno.EINTR) // an interrupted connect carries on in the background
            {
                op.Flags |= OperationFlags.ConnectInProgress;
                return Outcome.Pending;
            }
            return result == -Errno.EAGAIN ? Outcome.Pending : Finish(ref op, result); // EAGAIN: unix backlog full, connect again later
        }

        int error = NativeSocket.GetOption(op.Fd, SOL_SOCKET, SO_ERROR);
        if (error != 0) return Finish(ref op, error < 0 ? error : -error);
        // No error and writable means connected; woken for another reason, keep waiting.
        if ((observed & EPOLLOUT) == 0 && !IsWritable(op.Fd)) return Outcome.Pending;
        return Finish(ref op, 0);
    }

    private Outcome Read(ref PendingOperation op)
    {
        ref FdState state = ref _fds[op.Fd];
        while (true)
        {
            // IORING_OP_READ: offset -1 means the file position; pipes, sockets and eventfds have none.
            bool positional = op.Argument != ulong.MaxValue && (state.Flags & FdFlags.NotSeekable) == 0;
            int result = Libc.Result(positional
                ? Libc.pread(op.Fd, op.Buffer, (nuint)op.Length, (long)op.Argument)
                : Libc.read(op.Fd, op.Buffer, (nuint)op.Length));
            if (result == -ESPIPE && positional)
            {
                state.Flags |= FdFlags.NotSeekable;
                continue;
            }
            if (result == -Errno.EINTR) continue;
            return result == -Errno.EAGAIN ? Outcome.Pending : Finish(ref op, result);
        }
    }

    // First try of a POLL_ADD on an fd that others already wait on: its past edges are gone, so ask poll(2).
    private Outcome Poll(ref PendingOperation op)
    {
        int revents = PollNow(op.Fd, op.Interest);
        if (revents < 0) return Finish(ref op, revents);
        if ((revents & POLLNVAL) != 0) return Finish(ref op, -Errno.EBADF);
        return PollReady(ref op, (uint)revents);
    }

    // The kernel reports the ready events among those asked for, plus POLLERR and POLLHUP always.
    private Outcome PollReady(ref PendingOperation op, uint mask)
    {
        uint ready = mask & (op.Interest | POLLERR | POLLHUP);
        if (ready == 0) return Outcome.Pending;
        if ((op.Flags & OperationFlags.Multishot) == 0) return Finish(ref op, (int)ready);
        _completions.Add(op.UserData, (int)ready, CompletionFlags.More);
        return Outcome.Pending;
    }

    // poll(2) with no wait: the revents, or -errno.
    private static int PollNow(int fd, uint events)
    {
        var pfd = new PollFd { Fd = fd, Events = (short)events };
        int result;
        do result = Libc.Result(Libc.poll(&pfd, 1, 0));
        while (result == -Errno.EINTR);
        return result < 0 ? result : (ushort)pfd.REvents;
    }

    private static bool IsWritable(int fd)
    {
        int revents = PollNow(fd, POLLOUT);
        return revents > 0 && (revents & POLLOUT) != 0;
    }

    // MSG_WAITALL on a stream socket: like the kernel (io_net_retry), keep going until the whole length moved.
    private static bool GathersMore(ref PendingOperation op, int moved)
    {
        if ((op.MessageFlags & MSG_WAITALL) == 0 || op.Done + moved >= op.Length || !IsRetryable(ref op)) return false;
        op.Done += moved;
        return true;
    }

    // What the kernel reports after MSG_WAITALL progress: bytes so far win over a later EOF or error.
    private static int Total(ref PendingOperation op, int result) =>
        result >= 0 ? result + op.Done : op.Done > 0 ? op.Done : result;

    // SOCK_STREAM: a short read means the receive queue was empty.
    private static bool IsByteStream(ref PendingOperation op) => (SocketType(ref op) & OperationFlags.ByteStream) != 0;

    // Where the kernel retries partial MSG_WAITALL transfers (io_net_retry): stream and seqpacket sockets.
    private static bool IsRetryable(ref PendingOperation op) =>
        (SocketType(ref op) & (OperationFlags.ByteStream | OperationFlags.Seqpacket)) != 0;

    private static OperationFlags SocketType(ref PendingOperation op)
    {
        if ((op.Flags & OperationFlags.TypeChecked) == 0)
        {
            int type = NativeSocket.GetOption(op.Fd, SOL_SOCKET, SO_TYPE);
            op.Flags |= OperationFlags.TypeChecked | type switch
            {
                SOCK_STREAM => OperationFlags.ByteStream,
                SOCK_SEQPACKET => OperationFlags.Seqpacket,
                _ => OperationFlags.None,
            };
        }
        return op.Flags;
    }
}
