using Uring.Native.IoUring;
using static Uring.Native.IoUring.IoUringConstants;

namespace Uring.Native;

// One prepare method per opcode, as liburing's io_uring_prep_*; minimum kernel beside each.
public sealed unsafe partial class IoUringRing
{
    /// <summary>A zeroed SQE with opcode, fd and user_data set, for the fields no prepare method covers (probing).</summary>
    internal IoUringSqe* PrepareRaw(IoUringOp op, int fd, ulong userData) => Prep(op, fd, userData);

    private IoUringSqe* Prep(IoUringOp op, int fd, ulong userData)
    {
        IoUringSqe* sqe = NextSqe();
        sqe->Opcode = (byte)op;
        sqe->Fd = fd;
        sqe->UserData = userData;
        return sqe;
    }

    /// <inheritdoc />
    public void PrepareNop(ulong userData) => Prep(IoUringOp.Nop, -1, userData); // 5.1

    /// <inheritdoc />
    public void PrepareAccept(int fd, byte* addr, uint* addrLen, int flags, ulong userData) // 5.5
    {
        IoUringSqe* sqe = Prep(IoUringOp.Accept, fd, userData);
        sqe->Addr = (ulong)addr;
        sqe->Off = (ulong)addrLen;
        sqe->OpFlags = (uint)flags;
    }

    /// <inheritdoc />
    public void PrepareAcceptMultishot(int fd, int flags, ulong userData) // 5.19
    {
        IoUringSqe* sqe = Prep(IoUringOp.Accept, fd, userData);
        sqe->OpFlags = (uint)flags;
        sqe->IoPrio = IORING_ACCEPT_MULTISHOT;
    }

    /// <inheritdoc />
    public void PrepareRecv(int fd, byte* buffer, int length, int flags, ulong userData) // 5.6
    {
        IoUringSqe* sqe = Prep(IoUringOp.Recv, fd, userData);
        sqe->Addr = (ulong)buffer;
        sqe->Len = (uint)length;
        sqe->OpFlags = (uint)flags;
    }

    /// <inheritdoc />
    public void PrepareRecvBufferSelect(int fd, ushort bufferGroup, int flags, ulong userData, int maxLength = 0) // 5.19 (buffer ring)
    {
        IoUringSqe* sqe = Prep(IoUringOp.Recv, fd, userData);
        sqe->Len = (uint)maxLength;
        sqe->Flags = IOSQE_BUFFER_SELECT;
        sqe->BufIndex = bufferGroup;
        sqe->OpFlags = (uint)flags;
    }

    /// <inheritdoc />
    public void PrepareRecvMultishot(int fd, ushort bufferGroup, int flags, ulong userData) // 6.0
    {
        IoUringSqe* sqe = Prep(IoUringOp.Recv, fd, userData);
        sqe->Flags = IOSQE_BUFFER_SELECT;
        sqe->BufIndex = bufferGroup;
        sqe->OpFlags = (uint)flags;
        sqe->IoPrio = IORING_RECV_MULTISHOT;
    }

    /// <inheritdoc />
    public void PrepareSend(int fd, byte* buffer, int length, int flags, ulong userData) // 5.6
    {
        IoUringSqe* sqe = Prep(IoUringOp.Send, fd, userData);
        sqe->Addr = (ulong)buffer;
        sqe->Len = (uint)length;
        sqe->OpFlags = (uint)(flags | Linux.MSG_NOSIGNAL);
    }

    /// <inheritdoc />
    public void PrepareSendMsg(int fd, MsgHdr* message, int flags, ulong userData) // 5.3
    {
        IoUringSqe* sqe = Prep(IoUringOp.SendMsg, fd, userData);
        sqe->Addr = (ulong)message;
        sqe->Len = 1;
        sqe->OpFlags = (uint)(flags | Linux.MSG_NOSIGNAL);
    }

    /// <inheritdoc />
    public void PrepareSendZc(int fd, byte* buffer, int length, int flags, int fixedBufferIndex, ulong userData, bool reportUsage = false) // 6.0, usage report 6.2
    {
        IoUringSqe* sqe = Prep(IoUringOp.SendZc, fd, userData);
        sqe->Addr = (ulong)buffer;
        sqe->Len = (uint)length;
        sqe->OpFlags = (uint)(flags | Linux.MSG_NOSIGNAL);
        if (fixedBufferIndex >= 0)
        {
            sqe->IoPrio = IORING_RECVSEND_FIXED_BUF;
            sqe->BufIndex = (ushort)fixedBufferIndex;
        }
        if (reportUsage) sqe->IoPrio |= IORING_SEND_ZC_REPORT_USAGE;
    }

    /// <inheritdoc />
    public void PrepareWriteFixed(int fd, byte* buffer, int length, int bufferIndex, ulong userData) // 5.1
    {
        IoUringSqe* sqe = Prep(IoUringOp.WriteFixed, fd, userData);
        sqe->Addr = (ulong)buffer;
        sqe->Len = (uint)length;
        sqe->Off = ulong.MaxValue; // the file position: a socket has none
        sqe->BufIndex = (ushort)bufferIndex;
    }

    /// <inheritdoc />
    public void PrepareSendMsgZc(int fd, MsgHdr* message, int flags, ulong userData, bool reportUsage = false) // 6.1, usage report 6.2
    {
        IoUringSqe* sqe = Prep(IoUringOp.SendMsgZc, fd, userData);
        sqe->Addr = (ulong)message;
        sqe->Len = 1;
        sqe->OpFlags = (uint)(flags | Linux.MSG_NOSIGNAL);
        if (reportUsage) sqe->IoPrio = IORING_SEND_ZC_REPORT_USAGE;
    }

    /// <inheritdoc />
    public void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData) // 5.5
    {
        IoUringSqe* sqe = Prep(IoUringOp.Connect, fd, userData);
        sqe->Addr = (ulong)addr;
        sqe->Off = (ulong)addrLen; // the length itself, not a pointer
    }

    /// <inheritdoc />
    public void PrepareRead(int fd, byte* buffer, int length, ulong offset, ulong userData) // 5.6
    {
        IoUringSqe* sqe = Prep(IoUringOp.Read, fd, userData);
        sqe->Addr = (ulong)buffer;
        sqe->Len = (uint)length;
        sqe->Off = offset;
    }

    /// <inheritdoc />
    public void PrepareClose(int fd, ulong userData) => Prep(IoUringOp.Close, fd, userData); // 5.6

    /// <inheritdoc />
    public void PrepareShutdown(int fd, int how, ulong userData) // 5.11
    {
        IoUringSqe* sqe = Prep(IoUringOp.Shutdown, fd, userData);
        sqe->Len = (uint)how;
    }

    /// <inheritdoc />
    public void PrepareCancel(ulong targetUserData, ulong userData) // 5.5
    {
        IoUringSqe* sqe = Prep(IoUringOp.AsyncCancel, -1, userData);
        sqe->Addr = targetUserData;
    }

    /// <inheritdoc />
    public void PrepareCancelFd(int fd, bool all, ulong userData) // 5.19
    {
        IoUringSqe* sqe = Prep(IoUringOp.AsyncCancel, fd, userData);
        sqe->OpFlags = IORING_ASYNC_CANCEL_FD | (all ? IORING_ASYNC_CANCEL_ALL : 0);
    }

    /// <inheritdoc />
    public void PrepareCancelAll(ulong userData) // 5.19
    {
        IoUringSqe* sqe = Prep(IoUringOp.AsyncCancel, -1, userData);
        sqe->OpFlags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
    }

    /// <inheritdoc />
    public void PreparePollAdd(int fd, uint pollEvents, bool multishot, ulong userData) // 5.1, multishot 5.13
    {
        IoUringSqe* sqe = Prep(IoUringOp.PollAdd, fd, userData);
        sqe->OpFlags = pollEvents; // poll32_events, little-endian
        sqe->Len = multishot ? IORING_POLL_ADD_MULTI : 0;
    }
}
