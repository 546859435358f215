using Uring.Native.Epoll;
using Uring.Native.Interop;
using Uring.Native.IoUring;
using static Uring.Native.Linux;

namespace Uring.Native;

// IORING_OP_CONNECT (5.5): the kernel's preparation and the epoll emulation (a non-blocking
// connect, then SO_ERROR once the socket is writable).

internal sealed unsafe partial class IoUringRing
{
    /// <inheritdoc />
    public void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData) // 5.5
    {
        IoUringSqe* sqe = Prep(IoUringOp.Connect, fd, userData);
        sqe->Addr = (ulong)addr;
        sqe->Off = (ulong)addrLen; // the length itself, not a pointer
    }
}

internal sealed unsafe partial class EpollRing
{
    /// <inheritdoc />
    public void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, OutInterest, &Connect, out int id);
        op.Buffer = addr;
        op.Length = addrLen;
        op.Flags = OperationFlags.NeedsNonBlocking;
        Queue(id);
    }

    private static Outcome Connect(EpollRing ring, ref PendingOperation op, uint observed)
    {
        if ((op.Flags & OperationFlags.ConnectInProgress) == 0)
        {
            int result = Libc.Result(Libc.connect(op.Fd, op.Buffer, op.Length));
            if (result == -Errno.EINPROGRESS || result == -Errno.EINTR) // an interrupted connect carries on in the background
            {
                op.Flags |= OperationFlags.ConnectInProgress;
                return Outcome.Pending;
            }
            return result == -Errno.EAGAIN ? Outcome.Pending : ring.Finish(ref op, result); // EAGAIN: unix backlog full, connect again later
        }

        int error = NativeSocket.GetOption(op.Fd, SOL_SOCKET, SO_ERROR);
        if (error != 0) return ring.Finish(ref op, error < 0 ? error : -error);
        // No error and writable means connected; woken for another reason, keep waiting.
        if ((observed & EPOLLOUT) == 0 && !IsWritable(op.Fd)) return Outcome.Pending;
        return ring.Finish(ref op, 0);
    }

    // poll(2) with no wait.
    private static bool IsWritable(int fd)
    {
        var pfd = new PollFd { Fd = fd, Events = (short)POLLOUT };
        int result;
        do result = Libc.Result(Libc.poll(&pfd, 1, 0));
        while (result == -Errno.EINTR);
        return result > 0 && (pfd.REvents & POLLOUT) != 0;
    }
}
