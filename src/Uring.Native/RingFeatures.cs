namespace Uring.Native;

/// <summary>
/// Optional kernel features a ring can use, each with the Linux release that brought it. The
/// io_uring engine probes them once per process (<see cref="KernelProbe"/>); code above the ring
/// asks <see cref="IRing.Features"/> and uses a feature only when it is there, with a fallback
/// otherwise. The epoll engine reports the subset it emulates. The names are those the engine's
/// log line lists (and an operator's <c>DisabledKernelFeatures</c> option takes).
/// </summary>
[Flags]
internal enum RingFeatures : uint
{
    /// <summary>None of the optional features.</summary>
    None = 0,

    /// <summary>IORING_SETUP_SUBMIT_ALL (5.18): a failing SQE does not stop the rest of the batch.</summary>
    SubmitAll = 1u << 0,

    /// <summary>IORING_SETUP_COOP_TASKRUN (5.19): no interrupting task-work signals.</summary>
    CoopTaskrun = 1u << 1,

    /// <summary>IORING_SETUP_SINGLE_ISSUER (6.0): one thread submits.</summary>
    SingleIssuer = 1u << 2,

    /// <summary>IORING_SETUP_DEFER_TASKRUN (6.1): completions are run only when the owner enters.</summary>
    DeferTaskrun = 1u << 3,

    /// <summary>IORING_ACCEPT_MULTISHOT (5.19): one accept SQE serves many connections.</summary>
    MultishotAccept = 1u << 4,

    /// <summary>IORING_RECV_MULTISHOT (6.0): one recv SQE keeps receiving into provided buffers.</summary>
    MultishotRecv = 1u << 5,

    /// <summary>IORING_ASYNC_CANCEL_ANY / _ALL / _FD (5.19): cancel many requests with one SQE.</summary>
    CancelAny = 1u << 6,

    /// <summary>IORING_REGISTER_RING_FDS with IORING_ENTER_REGISTERED_RING (5.18): enter without an fd lookup.</summary>
    RegisteredRingFd = 1u << 7,

    /// <summary>IORING_SETUP_NO_SQARRAY (6.6): the SQ ring has no index array.</summary>
    NoSqArray = 1u << 8,

    /// <summary>IORING_OP_SEND_ZC (6.0): zero-copy sends, memory returned at a notification.</summary>
    SendZc = 1u << 9,

    /// <summary>IORING_OP_SENDMSG_ZC (6.1) with IORING_SEND_ZC_REPORT_USAGE (6.2): the notification says when the kernel copied anyway.</summary>
    SendZcReportUsage = 1u << 10,

    /// <summary>IORING_REGISTER_BUFFERS2 with a sparse table and IORING_REGISTER_BUFFERS_UPDATE (5.13): fixed buffers added over time.</summary>
    RegisteredBuffers = 1u << 11,

    /// <summary>Sparse fixed file table and IORING_FILE_INDEX_ALLOC (5.19): direct descriptors.</summary>
    DirectDescriptors = 1u << 12,

    /// <summary>IORING_OP_URING_CMD socket commands SOCKET_URING_OP_SETSOCKOPT/GETSOCKOPT (6.7), SOL_SOCKET level.</summary>
    SocketCommands = 1u << 13,

    /// <summary>IORING_RECVSEND_BUNDLE (6.10): one recv or send over several provided buffers.</summary>
    Bundles = 1u << 14,

    /// <summary>IOU_PBUF_RING_INC (6.12): provided buffers consumed incrementally.</summary>
    IncrementalBuffers = 1u << 15,

    /// <summary>IORING_REGISTER_PBUF_STATUS (6.8): the kernel's head of a provided-buffer ring, so its free buffers are known exactly.</summary>
    BufferRingStatus = 1u << 16,

    /// <summary>IORING_REGISTER_SYNC_CANCEL (6.0): cancel an operation and wait for it without io_uring_enter (a ring whose enter fails).</summary>
    SyncCancel = 1u << 17,

    /// <summary>Every feature known to this library.</summary>
    All = (1u << 18) - 1,

    /// <summary>What Linux 5.19 offers: the oldest kernel the io_uring engine runs on (provided-buffer rings).</summary>
    Linux5_19 = SubmitAll | CoopTaskrun | MultishotAccept | CancelAny | RegisteredRingFd | RegisteredBuffers | DirectDescriptors,

    /// <summary>What Linux 6.0 offers: multishot receive, single issuer, zero-copy send, synchronous cancel.</summary>
    Linux6_0 = Linux5_19 | SingleIssuer | MultishotRecv | SendZc | SyncCancel,

    /// <summary>What Linux 6.1 offers: deferred task work.</summary>
    Linux6_1 = Linux6_0 | DeferTaskrun,
}
