namespace Uring.Native.Epoll;

[Flags]
internal enum FdFlags : byte
{
    None = 0,
    Registered = 1 << 0,   // added to our epoll set
    NonBlocking = 1 << 1,  // O_NONBLOCK set by us (accept and connect need it)
    ReadyListed = 1 << 2,  // on the ring's still-ready list
    Orphan = 1 << 3,       // our dup of a file closed while operations were pending on it: closed when the last one ends
}

/// <summary>Per-fd state: the operations waiting on it, in submission order, and its epoll registration.</summary>
internal struct FdState
{
    internal int Head;         // first pending operation id, 0 when none
    internal int Tail;
    internal int NextReady;    // next fd on the still-ready list
    internal uint ReadyMask;   // events to replay from the still-ready list
    internal FdFlags Flags;
}

/// <summary>
/// Fd states indexed by fd number. Fds are small dense integers, so a flat array that grows to the
/// highest fd seen beats a hash map and never allocates per operation.
/// </summary>
internal sealed class FdTable
{
    private FdState[] _states = new FdState[1024];

    internal int Length => _states.Length;

    /// <summary>The state of <paramref name="fd"/> (&gt;= 0). May grow the table: never hold a ref across a call for another fd.</summary>
    internal ref FdState this[int fd]
    {
        get
        {
            if ((uint)fd >= (uint)_states.Length) Grow(fd);
            return ref _states[fd];
        }
    }

    internal bool HasPending(int fd) => (uint)fd < (uint)_states.Length && _states[fd].Head != 0;

    private void Grow(int fd)
    {
        int size = _states.Length;
        while (size <= fd) size *= 2;
        Array.Resize(ref _states, size);
    }
}
