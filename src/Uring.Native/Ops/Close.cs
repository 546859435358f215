using Uring.Native.Epoll;
using Uring.Native.IoUring;

namespace Uring.Native;

// IORING_OP_CLOSE (5.6): the kernel's preparation and the epoll emulation, which keeps the
// kernel's semantics for operations still pending on the fd (see IssueClose).

internal sealed unsafe partial class IoUringRing
{
    /// <inheritdoc />
    public void PrepareClose(int fd, ulong userData) => Prep(IoUringOp.Close, fd, userData); // 5.6
}

internal sealed unsafe partial class EpollRing
{
    /// <inheritdoc />
    public void PrepareClose(int fd, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, 0, null, out int id);
        op.Issue = &IssueClose;
        Queue(id);
    }

    // As the kernel: in-flight requests hold their own reference to the file, so IORING_OP_CLOSE only
    // drops the number. They neither end nor lose their socket (no FIN goes out) until they complete
    // or are cancelled by user_data. The emulation keeps the file the same way, under a dup.
    private static void IssueClose(EpollRing ring, int id)
    {
        int fd = ring._ops[id].Fd;
        if (fd == ring._epollFd || fd == ring._wakeFd)
        {
            ring.CompleteNow(id, -Errno.EBADF); // io_uring likewise refuses to close its own ring fd
            return;
        }
        if ((uint)fd < (uint)ring._fds.Length)
        {
            if (ring._fds[fd].Head != 0 && !ring.KeepFileForPendingOperations(fd))
                ring.CancelOnFd(fd); // no fd left to keep the file with: end them rather than strand them
            ring.Forget(fd);
        }
        ring.CompleteNow(id, NativeSocket.Close(fd));
    }
}
