namespace Uring.Native.Epoll;

[Flags]
internal enum OperationFlags : ushort
{
    None = 0,
    Multishot = 1 << 0,
    BufferSelect = 1 << 1,
    CancelByFd = 1 << 2,
    CancelAll = 1 << 3,
    ConnectInProgress = 1 << 4,
    TypeChecked = 1 << 5,     // the socket type bits below are known (SO_TYPE asked once per operation)
    ByteStream = 1 << 6,      // SOCK_STREAM
    Seqpacket = 1 << 9,       // SOCK_SEQPACKET
    Linked = 1 << 7,          // on its fd's pending list
    Indexed = 1 << 8,         // in the user_data index (so PrepareCancel finds it)
    CancelAny = 1 << 10,      // AsyncCancel with IORING_ASYNC_CANCEL_ANY | _ALL
    ReportUsage = 1 << 11,    // SendZc/SendMsgZc with IORING_SEND_ZC_REPORT_USAGE: the notification says "copied"
}

/// <summary>
/// What the emulation keeps of one prepared operation, from prepare to final completion.
/// Records live in an <see cref="OperationTable"/> and are reused, so steady state allocates nothing.
/// </summary>
internal unsafe struct PendingOperation
{
    internal ulong UserData;
    internal byte* Buffer;          // recv/send/read buffer; msghdr (SendMsg); sockaddr (Accept, Connect)
    internal uint* AddressLength;   // Accept
    internal ulong Argument;        // Read: offset; AsyncCancel: target user_data; SendZc: fixed buffer index
    internal int Fd;
    internal int Length;            // bytes; Connect: sockaddr length; Shutdown: how
    internal int MessageFlags;      // MSG_* (SOCK_* for Accept)
    internal int Done;              // bytes already moved under MSG_WAITALL
    internal uint Interest;         // EPOLL* bits that can let it progress; PollAdd: the requested mask
    internal int Next;              // next op on the same fd (or next free record)
    internal int Previous;
    internal int NextSameUserData;
    internal IoUringOp Opcode;
    internal OperationFlags Flags;
    internal ushort BufferGroup;
}

/// <summary>
/// A pool of <see cref="PendingOperation"/> records addressed by id. Id 0 is never handed out,
/// so a zeroed link field means "none" and fresh fd states need no initialisation.
/// </summary>
internal sealed class OperationTable
{
    private PendingOperation[] _records;
    private int _freeHead;
    private int _highWater = 1;

    internal OperationTable(int capacity) => _records = new PendingOperation[Math.Max(capacity, 16)];

    internal ref PendingOperation this[int id] => ref _records[id];

    /// <summary>A zeroed record. May grow the table: never hold a ref across this call.</summary>
    internal int Allocate()
    {
        int id = _freeHead;
        if (id != 0)
        {
            _freeHead = _records[id].Next;
        }
        else
        {
            if (_highWater == _records.Length) Array.Resize(ref _records, _records.Length * 2);
            id = _highWater++;
        }
        _records[id] = default;
        return id;
    }

    internal void Free(int id)
    {
        _records[id].Flags = OperationFlags.None;
        _records[id].Next = _freeHead;
        _freeHead = id;
    }
}
