using Uring.Native.Epoll;
using Uring.Native.Interop;
using Uring.Native.IoUring;
using static Uring.Native.IoUring.IoUringConstants;

namespace Uring.Native;

// IORING_OP_ACCEPT, single (5.5) and multishot (5.19): the kernel's preparation and the epoll
// emulation (accept4 on readiness).

internal sealed unsafe partial class IoUringRing
{
    /// <inheritdoc />
    public void PrepareAccept(int fd, int flags, ulong userData) // 5.5
    {
        IoUringSqe* sqe = Prep(IoUringOp.Accept, fd, userData);
        sqe->OpFlags = (uint)flags;
    }

    /// <inheritdoc />
    public void PrepareAcceptMultishot(int fd, int flags, ulong userData) // 5.19
    {
        IoUringSqe* sqe = Prep(IoUringOp.Accept, fd, userData);
        sqe->OpFlags = (uint)flags;
        sqe->IoPrio = IORING_ACCEPT_MULTISHOT;
    }
}

internal sealed unsafe partial class EpollRing
{
    /// <inheritdoc />
    public void PrepareAccept(int fd, int flags, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, InInterest, &Accept, out int id);
        op.MessageFlags = flags;
        op.Flags = OperationFlags.NeedsNonBlocking;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareAcceptMultishot(int fd, int flags, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, InInterest, &AcceptMultishot, out int id);
        op.MessageFlags = flags;
        op.Flags = OperationFlags.NeedsNonBlocking | OperationFlags.Multishot;
        Queue(id);
    }

    private static Outcome Accept(EpollRing ring, ref PendingOperation op, uint observed) => ring.TryOnce(ref op, &Accept4);

    private static int Accept4(ref PendingOperation op) => Libc.Result(Libc.accept4(op.Fd, null, null, op.MessageFlags));

    // IORING_ACCEPT_MULTISHOT: one More-flagged completion per connection; any error but EAGAIN ends it.
    private static Outcome AcceptMultishot(EpollRing ring, ref PendingOperation op, uint observed)
    {
        for (int budget = MultishotBudget; budget > 0;)
        {
            int result = Accept4(ref op);
            if (result >= 0)
            {
                ring._completions.Add(op.UserData, result, CompletionFlags.More);
                budget--;
            }
            else if (result == -Errno.EAGAIN)
            {
                return Outcome.Pending;
            }
            else if (result != -Errno.EINTR)
            {
                return ring.Finish(ref op, result);
            }
        }
        return Outcome.Capped;
    }
}
