using Uring.Native.Epoll;
using Uring.Native.Interop;
using Uring.Native.IoUring;
using static Uring.Native.IoUring.IoUringConstants;
using static Uring.Native.Linux;

namespace Uring.Native;

// IORING_OP_RECV: into a caller's buffer (5.6), into a provided buffer (buffer select, 5.19 with a
// buffer ring), and multishot into provided buffers (6.0); the kernel's preparation and the epoll
// emulation (recv on readiness, buffers taken from the same ring).

internal sealed unsafe partial class IoUringRing
{
    /// <inheritdoc />
    public void PrepareRecv(int fd, byte* buffer, int length, ulong userData) => PrepRw(IoUringOp.Recv, fd, buffer, length, userData); // 5.6

    /// <inheritdoc />
    public void PrepareRecvBufferSelect(int fd, ushort bufferGroup, ulong userData, int maxLength = 0) // 5.19 (buffer ring)
    {
        IoUringSqe* sqe = Prep(IoUringOp.Recv, fd, userData);
        sqe->Len = (uint)maxLength;
        sqe->Flags = IOSQE_BUFFER_SELECT;
        sqe->BufIndex = bufferGroup;
    }

    /// <inheritdoc />
    public void PrepareRecvMultishot(int fd, ushort bufferGroup, ulong userData) // 6.0
    {
        IoUringSqe* sqe = Prep(IoUringOp.Recv, fd, userData);
        sqe->Flags = IOSQE_BUFFER_SELECT;
        sqe->BufIndex = bufferGroup;
        sqe->IoPrio = IORING_RECV_MULTISHOT;
    }
}

internal sealed unsafe partial class EpollRing
{
    /// <inheritdoc />
    public void PrepareRecv(int fd, byte* buffer, int length, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, InInterest, &Recv, out int id);
        op.Buffer = buffer;
        op.Length = length;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareRecvBufferSelect(int fd, ushort bufferGroup, ulong userData, int maxLength = 0)
    {
        ref PendingOperation op = ref Allocate(fd, userData, InInterest, &RecvSelect, out int id);
        op.Length = maxLength;
        op.BufferGroup = bufferGroup;
        op.Flags = OperationFlags.BufferSelect;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareRecvMultishot(int fd, ushort bufferGroup, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, InInterest, &RecvSelect, out int id);
        op.BufferGroup = bufferGroup;
        op.Flags = OperationFlags.BufferSelect | OperationFlags.Multishot;
        Queue(id);
    }

    private static Outcome Recv(EpollRing ring, ref PendingOperation op, uint observed) => ring.TryOnce(ref op, &RecvOnce);

    private static int RecvOnce(ref PendingOperation op) => Libc.Result(Libc.recv(op.Fd, op.Buffer, (nuint)op.Length, MSG_DONTWAIT));

    // Buffer select, single or multishot: the buffer comes from the group's provided-buffer ring.
    private static Outcome RecvSelect(EpollRing ring, ref PendingOperation op, uint observed)
    {
        bool multishot = (op.Flags & OperationFlags.Multishot) != 0;
        ProvidedBufferRing? buffers = op.BufferGroup < ring._bufferRings.Length ? ring._bufferRings[op.BufferGroup] : null;
        bool received = false;
        for (int budget = MultishotBudget; ;)
        {
            if (buffers is null || !buffers.TryTake(out ushort bufferId))
            {
                // After a receive the kernel only goes on when it knows more is queued; it does not fail an op that would just wait.
                if (received && NothingQueued(op.Fd)) return Outcome.Pending;
                return ring.Finish(ref op, -Errno.ENOBUFS); // final: the caller re-arms once buffers are back
            }
            int length = op.Length > 0 && op.Length < buffers.BufferSize ? op.Length : buffers.BufferSize; // sqe->len caps a buffer-select recv
            int result = Libc.Result(Libc.recv(op.Fd, buffers.GetBuffer(bufferId), (nuint)length, MSG_DONTWAIT));
            if (result <= 0)
            {
                // The kernel leaves the buffer in the ring when nothing was received (EOF and errors carry no buffer).
                buffers.Recycle(bufferId);
                if (result == -Errno.EINTR) continue;
                return result == -Errno.EAGAIN ? Outcome.Pending : ring.Finish(ref op, result);
            }

            uint flags = CompletionFlags.Buffer | ((uint)bufferId << CompletionFlags.BufferShift);
            if (!multishot) return ring.Finish(ref op, result, flags);
            ring._completions.Add(op.UserData, result, flags | CompletionFlags.More);
            received = true;
            if (result < buffers.BufferSize && Drained(ref op, observed)) return Outcome.Pending;
            if (--budget == 0) return Outcome.Capped;
        }
    }

    // A short read from a stream socket emptied its queue, and whatever arrives later raises a new edge:
    // skip the recv that would only say EAGAIN. Not when epoll reported a FIN or an error, which are
    // seen only by reading on, nor when we were not woken by an edge (first try, replay).
    private static bool Drained(ref PendingOperation op, uint observed)
    {
        if (observed == 0 || (observed & (EPOLLRDHUP | Failure)) != 0) return false;
        if ((op.Flags & OperationFlags.TypeChecked) == 0)
        {
            op.Flags |= OperationFlags.TypeChecked;
            if (NativeSocket.GetOption(op.Fd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM) op.Flags |= OperationFlags.ByteStream;
        }
        return (op.Flags & OperationFlags.ByteStream) != 0;
    }

    private static bool NothingQueued(int fd)
    {
        byte probe;
        int result;
        do result = Libc.Result(Libc.recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT));
        while (result == -Errno.EINTR);
        return result == -Errno.EAGAIN;
    }
}
