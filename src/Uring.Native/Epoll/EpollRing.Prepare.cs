using Uring.Native.Epoll;

namespace Uring.Native;

// One prepare method per opcode: each fills a pooled record and queues it. Nothing runs until submit.
public sealed unsafe partial class EpollRing
{
    /// <inheritdoc />
    public void PrepareNop(ulong userData) => Queue(Allocate(IoUringOp.Nop, -1, userData, 0));

    /// <inheritdoc />
    public void PrepareAccept(int fd, byte* addr, uint* addrLen, int flags, ulong userData)
    {
        int id = Allocate(IoUringOp.Accept, fd, userData, InInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = addr;
        op.AddressLength = addrLen;
        op.MessageFlags = flags;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareAcceptMultishot(int fd, int flags, ulong userData)
    {
        int id = Allocate(IoUringOp.Accept, fd, userData, InInterest);
        ref PendingOperation op = ref _ops[id];
        op.MessageFlags = flags;
        op.Flags = OperationFlags.Multishot;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareRecv(int fd, byte* buffer, int length, int flags, ulong userData)
    {
        int id = Allocate(IoUringOp.Recv, fd, userData, InInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = buffer;
        op.Length = length;
        op.MessageFlags = flags;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareRecvBufferSelect(int fd, ushort bufferGroup, int flags, ulong userData, int maxLength = 0)
    {
        int id = Allocate(IoUringOp.Recv, fd, userData, InInterest);
        ref PendingOperation op = ref _ops[id];
        op.Length = maxLength;
        op.BufferGroup = bufferGroup;
        op.MessageFlags = flags;
        op.Flags = OperationFlags.BufferSelect;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareRecvMultishot(int fd, ushort bufferGroup, int flags, ulong userData)
    {
        int id = Allocate(IoUringOp.Recv, fd, userData, InInterest);
        ref PendingOperation op = ref _ops[id];
        op.BufferGroup = bufferGroup;
        op.MessageFlags = flags;
        op.Flags = OperationFlags.BufferSelect | OperationFlags.Multishot;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareSend(int fd, byte* buffer, int length, int flags, ulong userData)
    {
        int id = Allocate(IoUringOp.Send, fd, userData, OutInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = buffer;
        op.Length = length;
        op.MessageFlags = flags;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareSendMsg(int fd, MsgHdr* message, int flags, ulong userData)
    {
        int id = Allocate(IoUringOp.SendMsg, fd, userData, OutInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = (byte*)message;
        op.MessageFlags = flags;
        Queue(id);
    }

    /// <inheritdoc />
    /// <remarks>The emulation copies from <paramref name="buffer"/>; a fixed buffer index is only checked against the registered range, as the kernel does (-EFAULT).</remarks>
    public void PrepareSendZc(int fd, byte* buffer, int length, int flags, int fixedBufferIndex, ulong userData, bool reportUsage = false)
    {
        int id = Allocate(IoUringOp.SendZc, fd, userData, OutInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = buffer;
        op.Length = length;
        op.MessageFlags = flags;
        op.Argument = (ulong)(long)fixedBufferIndex;
        if (reportUsage) op.Flags = OperationFlags.ReportUsage;
        Queue(id);
    }

    /// <inheritdoc />
    /// <remarks>A send from <paramref name="buffer"/>; the index is checked against the registered range, as the kernel does (-EFAULT).</remarks>
    public void PrepareWriteFixed(int fd, byte* buffer, int length, int bufferIndex, ulong userData)
    {
        int id = Allocate(IoUringOp.WriteFixed, fd, userData, OutInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = buffer;
        op.Length = length;
        op.Argument = (ulong)(long)bufferIndex;
        Queue(id);
    }

    /// <inheritdoc />
    /// <remarks>The emulation sends with sendmsg (a copy) and posts the notification at once, flagged as copied when asked.</remarks>
    public void PrepareSendMsgZc(int fd, MsgHdr* message, int flags, ulong userData, bool reportUsage = false)
    {
        int id = Allocate(IoUringOp.SendMsgZc, fd, userData, OutInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = (byte*)message;
        op.MessageFlags = flags;
        if (reportUsage) op.Flags = OperationFlags.ReportUsage;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData)
    {
        int id = Allocate(IoUringOp.Connect, fd, userData, OutInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = addr;
        op.Length = addrLen;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareRead(int fd, byte* buffer, int length, ulong offset, ulong userData)
    {
        int id = Allocate(IoUringOp.Read, fd, userData, InInterest);
        ref PendingOperation op = ref _ops[id];
        op.Buffer = buffer;
        op.Length = length;
        op.Argument = offset;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareClose(int fd, ulong userData) => Queue(Allocate(IoUringOp.Close, fd, userData, 0));

    /// <inheritdoc />
    public void PrepareShutdown(int fd, int how, ulong userData)
    {
        int id = Allocate(IoUringOp.Shutdown, fd, userData, 0);
        _ops[id].Length = how;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareCancel(ulong targetUserData, ulong userData)
    {
        int id = Allocate(IoUringOp.AsyncCancel, -1, userData, 0);
        _ops[id].Argument = targetUserData;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareCancelFd(int fd, bool all, ulong userData)
    {
        int id = Allocate(IoUringOp.AsyncCancel, fd, userData, 0);
        _ops[id].Flags = OperationFlags.CancelByFd | (all ? OperationFlags.CancelAll : OperationFlags.None);
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareCancelAll(ulong userData)
    {
        int id = Allocate(IoUringOp.AsyncCancel, -1, userData, 0);
        _ops[id].Flags = OperationFlags.CancelAny;
        Queue(id);
    }

    /// <inheritdoc />
    public void PreparePollAdd(int fd, uint pollEvents, bool multishot, ulong userData)
    {
        int id = Allocate(IoUringOp.PollAdd, fd, userData, pollEvents);
        if (multishot) _ops[id].Flags = OperationFlags.Multishot;
        Queue(id);
    }

    private int Allocate(IoUringOp opcode, int fd, ulong userData, uint interest)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int id = _ops.Allocate();
        ref PendingOperation op = ref _ops[id];
        op.Opcode = opcode;
        op.Fd = fd;
        op.UserData = userData;
        op.Interest = interest;
        return id;
    }

    // A full queue is submitted first, as liburing's prep helpers leave it to the caller and the
    // interface promises: nothing prepared is ever refused.
    private void Queue(int id)
    {
        if (_submissionCount == _submissions.Length) SubmitQueued();
        _submissions[_submissionCount++] = id;
        _prepared++;
    }
}
