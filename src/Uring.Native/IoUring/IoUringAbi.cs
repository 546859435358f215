using System.Runtime.InteropServices;

namespace Uring.Native.IoUring;

// Layouts and constants from include/uapi/linux/io_uring.h, with the kernel's names.
internal static class IoUringConstants
{
    // io_uring_setup flags
    internal const uint IORING_SETUP_CQSIZE = 1u << 3;         // 5.5
    internal const uint IORING_SETUP_CLAMP = 1u << 4;          // 5.6
    internal const uint IORING_SETUP_R_DISABLED = 1u << 6;     // 5.10
    internal const uint IORING_SETUP_SUBMIT_ALL = 1u << 7;     // 5.18
    internal const uint IORING_SETUP_COOP_TASKRUN = 1u << 8;   // 5.19
    internal const uint IORING_SETUP_TASKRUN_FLAG = 1u << 9;   // 5.19
    internal const uint IORING_SETUP_SINGLE_ISSUER = 1u << 12; // 6.0
    internal const uint IORING_SETUP_DEFER_TASKRUN = 1u << 13; // 6.1
    internal const uint IORING_SETUP_NO_SQARRAY = 1u << 16;    // 6.6

    // features
    internal const uint IORING_FEAT_SINGLE_MMAP = 1u << 0;
    internal const uint IORING_FEAT_NODROP = 1u << 1;
    internal const uint IORING_FEAT_FAST_POLL = 1u << 5;
    internal const uint IORING_FEAT_EXT_ARG = 1u << 8;

    // mmap offsets
    internal const long IORING_OFF_SQ_RING = 0;
    internal const long IORING_OFF_CQ_RING = 0x8000000;
    internal const long IORING_OFF_SQES = 0x10000000;

    // io_uring_enter flags
    internal const uint IORING_ENTER_GETEVENTS = 1u << 0;
    internal const uint IORING_ENTER_EXT_ARG = 1u << 3;
    internal const uint IORING_ENTER_REGISTERED_RING = 1u << 4; // 5.18

    // sq_ring->flags
    internal const uint IORING_SQ_NEED_WAKEUP = 1u << 0;
    internal const uint IORING_SQ_CQ_OVERFLOW = 1u << 1;
    internal const uint IORING_SQ_TASKRUN = 1u << 2;

    // sqe->flags
    internal const byte IOSQE_FIXED_FILE = 1 << 0;
    internal const byte IOSQE_BUFFER_SELECT = 1 << 5;

    // sqe->ioprio for accept / send / recv
    internal const ushort IORING_ACCEPT_MULTISHOT = 1 << 0;
    internal const ushort IORING_RECVSEND_POLL_FIRST = 1 << 0;
    internal const ushort IORING_RECV_MULTISHOT = 1 << 1;
    internal const ushort IORING_RECVSEND_FIXED_BUF = 1 << 2;
    internal const ushort IORING_SEND_ZC_REPORT_USAGE = 1 << 3; // 6.2
    internal const ushort IORING_RECVSEND_BUNDLE = 1 << 4;      // 6.10

    // cqe->res of a SEND_ZC notification, with IORING_SEND_ZC_REPORT_USAGE
    internal const uint IORING_NOTIF_USAGE_ZC_COPIED = 1u << 31;

    // sqe->file_index: let the kernel pick a free fixed-file slot (5.19)
    internal const uint IORING_FILE_INDEX_ALLOC = ~0u;

    // sqe->cancel_flags
    internal const uint IORING_ASYNC_CANCEL_ALL = 1u << 0;
    internal const uint IORING_ASYNC_CANCEL_FD = 1u << 1;
    internal const uint IORING_ASYNC_CANCEL_ANY = 1u << 2;

    // sqe->len for POLL_ADD
    internal const uint IORING_POLL_ADD_MULTI = 1u << 0;

    // io_uring_register opcodes
    internal const uint IORING_REGISTER_BUFFERS = 0;
    internal const uint IORING_UNREGISTER_BUFFERS = 1;
    internal const uint IORING_UNREGISTER_FILES = 3;
    internal const uint IORING_REGISTER_PROBE = 8;
    internal const uint IORING_REGISTER_ENABLE_RINGS = 12;
    internal const uint IORING_REGISTER_FILES2 = 13;
    internal const uint IORING_REGISTER_BUFFERS2 = 15;
    internal const uint IORING_REGISTER_BUFFERS_UPDATE = 16;
    internal const uint IORING_REGISTER_RING_FDS = 20;
    internal const uint IORING_UNREGISTER_RING_FDS = 21;
    internal const uint IORING_REGISTER_PBUF_RING = 22;
    internal const uint IORING_UNREGISTER_PBUF_RING = 23;
    internal const uint IORING_REGISTER_SYNC_CANCEL = 24;      // 6.0
    internal const uint IORING_REGISTER_PBUF_STATUS = 26;

    // io_uring_rsrc_register.flags
    internal const uint IORING_RSRC_REGISTER_SPARSE = 1u << 0;

    // io_uring_buf_reg.flags
    internal const ushort IOU_PBUF_RING_INC = 2; // 6.12

    // IORING_OP_URING_CMD socket commands (6.7)
    internal const uint SOCKET_URING_OP_GETSOCKOPT = 2;
    internal const uint SOCKET_URING_OP_SETSOCKOPT = 3;

    internal const ushort IO_URING_OP_SUPPORTED = 1 << 0;
}

[StructLayout(LayoutKind.Sequential)]
internal struct IoSqringOffsets
{
    public uint Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1;
    public ulong UserAddr;
}

[StructLayout(LayoutKind.Sequential)]
internal struct IoCqringOffsets
{
    public uint Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1;
    public ulong UserAddr;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoUringParams
{
    public uint SqEntries;
    public uint CqEntries;
    public uint Flags;
    public uint SqThreadCpu;
    public uint SqThreadIdle;
    public uint Features;
    public uint WqFd;
    public fixed uint Resv[3];
    public IoSqringOffsets SqOff;
    public IoCqringOffsets CqOff;
}

/// <summary>struct io_uring_sqe (64 bytes); unions flattened to the fields we use.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct IoUringSqe
{
    [FieldOffset(0)] public byte Opcode;
    [FieldOffset(1)] public byte Flags;
    [FieldOffset(2)] public ushort IoPrio;
    [FieldOffset(4)] public int Fd;
    [FieldOffset(8)] public ulong Off;            // off / addr2
    [FieldOffset(16)] public ulong Addr;          // addr / splice_off_in
    [FieldOffset(24)] public uint Len;
    [FieldOffset(28)] public uint OpFlags;        // rw_flags, msg_flags, accept_flags, cancel_flags, poll32_events
    [FieldOffset(32)] public ulong UserData;
    [FieldOffset(8)] public uint CmdOp;           // uring_cmd: cmd_op
    [FieldOffset(16)] public uint Level;          // uring_cmd socket: level
    [FieldOffset(20)] public uint OptName;        // uring_cmd socket: optname
    [FieldOffset(40)] public ushort BufIndex;     // buf_index / buf_group
    [FieldOffset(42)] public ushort Personality;
    [FieldOffset(44)] public int FileIndex;       // splice_fd_in / file_index / addr_len / optlen
    [FieldOffset(48)] public ulong Addr3;         // addr3 / optval
    [FieldOffset(56)] public ulong Pad2;
}

[StructLayout(LayoutKind.Sequential)]
internal struct IoUringCqe
{
    public ulong UserData;
    public int Res;
    public uint Flags;
}

[StructLayout(LayoutKind.Sequential)]
internal struct IoUringBufReg
{
    public ulong RingAddr;
    public uint RingEntries;
    public ushort Bgid;
    public ushort Flags;
    public ulong Resv0, Resv1, Resv2;
}

/// <summary>struct io_uring_buf_status (REGISTER_PBUF_STATUS).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoUringBufStatus
{
    public uint BufGroup;
    public uint Head;
    public fixed uint Resv[8];
}

/// <summary>struct io_uring_rsrc_register (REGISTER_FILES2 / BUFFERS2).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoUringRsrcRegister
{
    public uint Nr;
    public uint Flags;
    public ulong Resv2;
    public ulong Data;
    public ulong Tags;
}

/// <summary>struct io_uring_rsrc_update2 (REGISTER_BUFFERS_UPDATE / FILES_UPDATE2).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoUringRsrcUpdate2
{
    public uint Offset;
    public uint Resv;
    public ulong Data;
    public ulong Tags;
    public uint Nr;
    public uint Resv2;
}

/// <summary>struct io_uring_rsrc_update (REGISTER_RING_FDS).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoUringRsrcUpdate
{
    public uint Offset;
    public uint Resv;
    public ulong Data;
}

/// <summary>struct io_uring_sync_cancel_reg (REGISTER_SYNC_CANCEL).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoUringSyncCancelReg
{
    public ulong Addr;
    public int Fd;
    public uint Flags;
    public KernelTimespec Timeout;
    public fixed ulong Pad[4];
}

[StructLayout(LayoutKind.Sequential)]
internal struct KernelTimespec
{
    public long TvSec;
    public long TvNsec;
}

[StructLayout(LayoutKind.Sequential)]
internal struct IoUringGeteventsArg
{
    public ulong Sigmask;
    public uint SigmaskSz;
    public uint MinWaitUsec;
    public ulong Ts;
}
