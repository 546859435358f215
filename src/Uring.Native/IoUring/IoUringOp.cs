namespace Uring.Native;

/// <summary>io_uring opcodes (enum io_uring_op), minimum kernel beside each.</summary>
internal enum IoUringOp : byte
{
#pragma warning disable CS1591 // names are the kernel's
    Nop = 0,              // 5.1
    PollAdd = 6,          // 5.1
    PollRemove = 7,       // 5.1
    WriteFixed = 5,       // 5.1
    SendMsg = 9,          // 5.3
    RecvMsg = 10,         // 5.3
    Timeout = 11,         // 5.4
    Accept = 13,          // 5.5
    AsyncCancel = 14,     // 5.5
    LinkTimeout = 15,     // 5.5
    Connect = 16,         // 5.5
    Close = 19,           // 5.6
    Read = 22,            // 5.6
    Write = 23,           // 5.6
    Send = 26,            // 5.6
    Recv = 27,            // 5.6
    Shutdown = 34,        // 5.11
    Socket = 45,          // 5.19
    UringCmd = 46,        // 5.19 (socket commands 6.7)
    SendZc = 47,          // 6.0
    SendMsgZc = 48,       // 6.1
#pragma warning restore CS1591
}
