using System.Buffers;
using System.Runtime.InteropServices;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// The kernel-visible memory of one send in flight: an iovec array and a msghdr in native memory
/// (never moved), and the pins of the output segments they point into.
/// </summary>
/// <remarks>
/// Ownership: the loop's <see cref="SendSlotPool"/> lends a slot to a connection when it prepares a
/// send; the kernel reads the iovecs until the send's final completion, and only then does the
/// connection return the slot. A slot whose send never completed (the loop gave up on the
/// kernel) is never returned and never freed. Pooling per loop means an idle connection holds
/// none of this memory.
/// </remarks>
internal sealed unsafe class SendSlot
{
    public const int MaxIov = 64;

    public SendSlot()
    {
        Iov = (IoVec*)NativeMemory.Alloc(MaxIov, (nuint)sizeof(IoVec));
        Msg = (MsgHdr*)NativeMemory.AllocZeroed((nuint)sizeof(MsgHdr));
    }

    public IoVec* Iov { get; }

    public MsgHdr* Msg { get; }

    // Grown to the largest count seen (most sends have one or two segments).
    private MemoryHandle[] _pins = new MemoryHandle[4];

    public int Count { get; private set; }

    /// <summary>Bytes the iovecs cover.</summary>
    public long Bytes { get; private set; }

    // Leases on the segments' blocks (a zero-copy send): held until its notification.
    private IKernelLease[] _leases = [];
    private int _leaseCount;

    /// <summary>Points the iovecs at the first <see cref="MaxIov"/> non-empty segments of <paramref name="buffer"/>; returns how many.</summary>
    public int Fill(in ReadOnlySequence<byte> buffer)
    {
        int count = 0;
        long bytes = 0;
        foreach (ReadOnlyMemory<byte> segment in buffer)
        {
            if (segment.IsEmpty) continue;
            if (count == MaxIov) break;
            MemoryHandle pin = segment.Pin(); // free for pool blocks: their slabs are pinned
            if (count == _pins.Length) Array.Resize(ref _pins, Math.Min(MaxIov, _pins.Length * 4));
            _pins[count] = pin;
            Iov[count].Base = pin.Pointer;
            Iov[count].Length = (nuint)segment.Length;
            bytes += segment.Length;
            count++;
        }
        Bytes = bytes;
        Msg->Iov = Iov;
        Msg->IovLength = (nuint)count;
        Count = count;
        return count;
    }

    /// <summary>
    /// Leases the blocks behind the filled segments (for a zero-copy send: the pipe may give them
    /// back before the kernel is done reading). False, with nothing leased, when some segment is
    /// not the transport pool's memory.
    /// </summary>
    public bool TryLease(in ReadOnlySequence<byte> buffer)
    {
        if (_leases.Length < Count) _leases = new IKernelLease[SendSlot.MaxIov];
        int n = 0;
        foreach (ReadOnlyMemory<byte> segment in buffer)
        {
            if (segment.IsEmpty) continue;
            if (n == Count) break;
            if (PinnedBlockMemoryPool.LeaseOf(segment) is not { } lease)
            {
                Array.Clear(_leases, 0, n); // none was taken yet
                return false;
            }
            _leases[n++] = lease;
        }
        for (int i = 0; i < n; i++) _leases[i].Lease();
        _leaseCount = n;
        return true;
    }

    /// <summary>Releases the leases (at the zero-copy send's notification).</summary>
    public void ReleaseLeases()
    {
        for (int i = 0; i < _leaseCount; i++)
        {
            _leases[i].ReleaseLease();
            _leases[i] = null!;
        }
        _leaseCount = 0;
    }

    /// <summary>Releases the pins (after the send's final completion).</summary>
    public void Clear()
    {
        for (int i = 0; i < Count; i++) _pins[i].Dispose();
        Count = 0;
    }

    public void Free()
    {
        NativeMemory.Free(Iov);
        NativeMemory.Free(Msg);
    }
}

/// <summary>
/// One loop's spare <see cref="SendSlot"/>s; loop thread only. Spares are kept up to the most slots
/// lent at once in the current or the previous window (one second of the loop's clock), and at
/// least <see cref="MinSpare"/>: under steady load with many sends in flight (hundreds of
/// connections answered in one iteration) each send reuses a slot instead of allocating one, and a
/// burst's peak is freed within two windows after it, so it does not stay behind as idle memory.
/// The loop wakes for that trim while it holds more spares than that window can still justify
/// (<see cref="HoldsExcess"/>).
/// </summary>
internal sealed class SendSlotPool
{
    public const int MinSpare = 32;
    public const long WindowMilliseconds = 1000;
    private readonly Stack<SendSlot> _free = new();
    private int _lent;              // out with their connections (a slot the kernel never gave back stays counted)
    private int _peak;              // most lent at once in this window
    private int _limit = MinSpare;  // spares kept: at least MinSpare and the last window's peak
    private long _windowStart;

    public SendSlot Rent()
    {
        if (!_free.TryPop(out SendSlot? slot))
        {
            slot = new SendSlot();
            Created++;
        }
        if (++_lent > _peak) _peak = _lent;
        return slot;
    }

    public void Return(SendSlot slot)
    {
        _lent--;
        slot.Clear();
        if (_free.Count < Math.Max(_limit, _peak)) _free.Push(slot);
        else slot.Free();
    }

    /// <summary>
    /// More spares than <see cref="MinSpare"/> and than are lent: the loop should not sleep past the
    /// next window's end. (Spares up to the lent count stay anyway: the window's peak covers them;
    /// and a send that comes back wakes the loop.)
    /// </summary>
    public bool HoldsExcess => _free.Count > Math.Max(MinSpare, _lent);

    /// <summary>Spares now (tests; loop thread's state, read as a snapshot).</summary>
    public int SpareCount => _free.Count;

    /// <summary>Slots lent now (tests; as <see cref="SpareCount"/>).</summary>
    public int LentCount => _lent;

    /// <summary>Slots this pool has allocated in all (tests).</summary>
    public int Created { get; private set; }

    /// <summary>Spares freed at a window's end (tests).</summary>
    public int Trimmed { get; private set; }

    /// <summary>Once per loop iteration, with the loop's clock: at a window's end, frees the spares above what that window used.</summary>
    public void Tick(long nowMilliseconds)
    {
        if (nowMilliseconds - _windowStart < WindowMilliseconds) return;
        _windowStart = nowMilliseconds;
        _limit = Math.Max(MinSpare, _peak);
        _peak = _lent;
        while (_free.Count > _limit)
        {
            _free.Pop().Free();
            Trimmed++;
        }
    }

    /// <summary>Frees the spare slots (lent ones are their connections' until their sends complete).</summary>
    public void Free()
    {
        while (_free.TryPop(out SendSlot? slot)) slot.Free();
    }
}
