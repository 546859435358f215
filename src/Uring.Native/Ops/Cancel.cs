using Uring.Native.Epoll;
using Uring.Native.IoUring;
using static Uring.Native.IoUring.IoUringConstants;

namespace Uring.Native;

// IORING_OP_ASYNC_CANCEL by user_data (5.5) and of everything (ANY | ALL, 5.19), and the
// synchronous cancel (IORING_REGISTER_SYNC_CANCEL, 6.0, in IoUringRing.cs): the kernel's
// preparation and the epoll emulation (the target's record ends with -ECANCELED).

internal sealed unsafe partial class IoUringRing
{
    /// <inheritdoc />
    public void PrepareCancel(ulong targetUserData, ulong userData) // 5.5
    {
        IoUringSqe* sqe = Prep(IoUringOp.AsyncCancel, -1, userData);
        sqe->Addr = targetUserData;
    }

    /// <inheritdoc />
    public void PrepareCancelAll(ulong userData) // 5.19
    {
        IoUringSqe* sqe = Prep(IoUringOp.AsyncCancel, -1, userData);
        sqe->OpFlags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
    }
}

internal sealed unsafe partial class EpollRing
{
    /// <inheritdoc />
    public void PrepareCancel(ulong targetUserData, ulong userData)
    {
        ref PendingOperation op = ref Allocate(-1, userData, 0, null, out int id);
        op.Argument = targetUserData;
        op.Issue = &IssueCancel;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareCancelAll(ulong userData)
    {
        ref PendingOperation op = ref Allocate(-1, userData, 0, null, out int id);
        op.Flags = OperationFlags.CancelAny;
        op.Issue = &IssueCancel;
        Queue(id);
    }

    /// <inheritdoc />
    /// <remarks>Pending operations live here, not in the kernel: the target ends at once.</remarks>
    public int CancelSync(ulong targetUserData, int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_byUserData.TryGetValue(targetUserData, out int target)) return -Errno.ENOENT;
        Cancel(target);
        return 0;
    }

    // The kernel posts the cancel's own completion first, then each target's -ECANCELED: so do we.
    private static void IssueCancel(EpollRing ring, int id)
    {
        ref PendingOperation op = ref ring._ops[id];
        if ((op.Flags & OperationFlags.CancelAny) != 0)
        {
            var targets = new List<int>();
            foreach (int first in ring._byUserData.Values)
                for (int target = first; target != 0; target = ring._ops[target].NextSameUserData) targets.Add(target);
            ring.CompleteNow(id, targets.Count);
            foreach (int target in targets) ring.Cancel(target);
        }
        else if (ring._byUserData.TryGetValue(op.Argument, out int target))
        {
            // Several pending ops may share a user_data: like the kernel without _ALL, cancel one.
            ring.CompleteNow(id, 0);
            ring.Cancel(target);
        }
        else
        {
            ring.CompleteNow(id, -Errno.ENOENT);
        }
    }
}
