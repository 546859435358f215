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

    /// <summary>IORING_OP_SENDMSG_ZC (6.1) with IORING_SEND_ZC_REPORT_USAGE (6.2): zero-copy sends whose notification says when the kernel copied anyway.</summary>
    SendZc = 1u << 9,

    /// <summary>IORING_REGISTER_PBUF_STATUS (6.8): the kernel's head of a provided-buffer ring, so its free buffers are known exactly.</summary>
    BufferRingStatus = 1u << 10,

    /// <summary>IORING_REGISTER_SYNC_CANCEL (6.0): cancel an operation and wait for it without io_uring_enter (a ring whose enter fails).</summary>
    SyncCancel = 1u << 11,

    /// <summary>Every feature known to this library.</summary>
    All = (1u << 12) - 1,

    /// <summary>What Linux 5.19 offers: the oldest kernel the io_uring engine runs on (provided-buffer rings).</summary>
    Linux5_19 = SubmitAll | CoopTaskrun | MultishotAccept | CancelAny | RegisteredRingFd,

    /// <summary>What Linux 6.0 offers: multishot receive, single issuer, zero-copy send, synchronous cancel.</summary>
    Linux6_0 = Linux5_19 | SingleIssuer | MultishotRecv | SyncCancel,

    /// <summary>What Linux 6.1 offers: deferred task work.</summary>
    Linux6_1 = Linux6_0 | DeferTaskrun,
}
