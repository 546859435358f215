namespace Uring.Native.Epoll;

[Flags]
internal enum OperationFlags : ushort
{
    None = 0,
    Multishot = 1 << 0,
    BufferSelect = 1 << 1,
    ConnectInProgress = 1 << 2,
    TypeChecked = 1 << 3,       // ByteStream below is known (SO_TYPE asked once per operation)
    ByteStream = 1 << 4,        // SOCK_STREAM
    Linked = 1 << 5,            // on its fd's pending list
    Indexed = 1 << 6,           // in the user_data index (so a cancel finds it)
    CancelAny = 1 << 7,         // AsyncCancel with IORING_ASYNC_CANCEL_ANY | _ALL
    ZeroCopy = 1 << 8,          // SendMsgZc: a result, then a notification (flagged copied)
    NeedsNonBlocking = 1 << 9,  // accept and connect would block the loop on a blocking fd
}

/// <summary>
/// What the emulation keeps of one prepared operation, from prepare to final completion. The
/// prepare (Ops/, beside the io_uring one) fills it, including the two functions that perform it:
/// <see cref="Issue"/> at submission and <see cref="Attempt"/> on each readiness. Records live in
/// an <see cref="OperationTable"/> and are reused, so the steady state allocates nothing.
/// </summary>
internal unsafe struct PendingOperation
{
    internal ulong UserData;
    internal byte* Buffer;          // recv/send buffer; msghdr (SendMsg); sockaddr (Connect)
    internal ulong Argument;        // AsyncCancel: the target's user_data
    internal int Fd;
    internal int Length;            // bytes; Connect: the sockaddr's length
    internal int MessageFlags;      // MSG_* (SOCK_* for Accept)
    internal uint Interest;         // EPOLL* bits that can let it progress
    internal int Next;              // next op on the same fd (or next free record)
    internal int Previous;
    internal int NextSameUserData;
    internal OperationFlags Flags;
    internal ushort BufferGroup;

    /// <summary>At submission: <see cref="EpollRing.IssueOnFd"/> for operations on an fd, or the op's own (close, cancel).</summary>
    internal delegate*<EpollRing, int, void> Issue;

    /// <summary>One non-blocking try (observed: the epoll mask that woke it, 0 when unknown).</summary>
    internal delegate*<EpollRing, ref PendingOperation, uint, EpollRing.Outcome> Attempt;
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
