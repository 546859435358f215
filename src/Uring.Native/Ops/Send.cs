using Uring.Native.Epoll;
using Uring.Native.Interop;
using Uring.Native.IoUring;
using static Uring.Native.IoUring.IoUringConstants;
using static Uring.Native.Linux;

namespace Uring.Native;

// IORING_OP_SEND (5.6), IORING_OP_SENDMSG (5.3) and IORING_OP_SENDMSG_ZC (6.1, usage report 6.2),
// always MSG_NOSIGNAL: the kernel's preparation and the epoll emulation (send/sendmsg on readiness;
// the zero-copy send copies, and its notification says so).

internal sealed unsafe partial class IoUringRing
{
    /// <inheritdoc />
    public void PrepareSend(int fd, byte* buffer, int length, ulong userData) // 5.6
        => PrepRw(IoUringOp.Send, fd, buffer, length, userData)->OpFlags = MSG_NOSIGNAL;

    /// <inheritdoc />
    public void PrepareSendMsg(int fd, MsgHdr* message, ulong userData) // 5.3
        => PrepRw(IoUringOp.SendMsg, fd, message, 1, userData)->OpFlags = MSG_NOSIGNAL;

    /// <inheritdoc />
    public void PrepareSendMsgZc(int fd, MsgHdr* message, ulong userData) // 6.1, usage report 6.2
    {
        IoUringSqe* sqe = PrepRw(IoUringOp.SendMsgZc, fd, message, 1, userData);
        sqe->OpFlags = MSG_NOSIGNAL;
        sqe->IoPrio = IORING_SEND_ZC_REPORT_USAGE;
    }
}

internal sealed unsafe partial class EpollRing
{
    private const int SendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;

    /// <inheritdoc />
    public void PrepareSend(int fd, byte* buffer, int length, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, OutInterest, &Send, out int id);
        op.Buffer = buffer;
        op.Length = length;
        Queue(id);
    }

    /// <inheritdoc />
    public void PrepareSendMsg(int fd, MsgHdr* message, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, OutInterest, &SendMsg, out int id);
        op.Buffer = (byte*)message;
        Queue(id);
    }

    /// <inheritdoc />
    /// <remarks>The emulation sends with sendmsg (a copy) and posts the notification at once, flagged as copied.</remarks>
    public void PrepareSendMsgZc(int fd, MsgHdr* message, ulong userData)
    {
        ref PendingOperation op = ref Allocate(fd, userData, OutInterest, &SendMsg, out int id);
        op.Buffer = (byte*)message;
        op.Flags = OperationFlags.ZeroCopy;
        Queue(id);
    }

    // A short send is the caller's to finish, as with io_uring.
    private static Outcome Send(EpollRing ring, ref PendingOperation op, uint observed) => ring.TryOnce(ref op, &SendOnce);

    private static Outcome SendMsg(EpollRing ring, ref PendingOperation op, uint observed) => ring.TryOnce(ref op, &SendMsgOnce);

    private static int SendOnce(ref PendingOperation op) => Libc.Result(Libc.send(op.Fd, op.Buffer, (nuint)op.Length, SendFlags));

    private static int SendMsgOnce(ref PendingOperation op) => Libc.Result(Libc.sendmsg(op.Fd, (MsgHdr*)op.Buffer, SendFlags));
}
