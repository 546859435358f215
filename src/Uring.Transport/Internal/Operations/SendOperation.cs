using System.Buffers;
using System.Runtime.InteropServices;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One send of a connection's output: the segments of its output pipe gathered into an iovec
/// array, sent with IORING_OP_SEND (one segment), SENDMSG, or SENDMSG_ZC (zero-copy, large sends).
/// </summary>
/// <remarks>
/// Owns what the kernel reads: the iovecs and msghdr (native memory of this object's, never moved),
/// the pins of the segments, and for a zero-copy send leases on their blocks. From its submit to its
/// final completion; for a zero-copy send, to its notification (the pipe may give the blocks back
/// once the result came: the leases keep them from the pool until then). Only then does it release
/// them and go back to the loop's <see cref="SendOperationPool"/>; its native memory is freed only
/// by that pool, never while lent. A loop that exits with it in the kernel retires it: the segments
/// are taken out of circulation and this object (its native memory, its leases) is kept for good.
/// </remarks>
internal sealed unsafe class SendOperation : KernelOperation
{
    public const int MaxIov = 64;

    private readonly IoVec* _iov;
    private readonly MsgHdr* _msg;
    private MemoryHandle[] _pins = new MemoryHandle[4]; // grown to the largest count seen (most sends have one or two segments)
    private IKernelLease[] _leases = [];
    private int _leaseCount;
    private UringConnection? _connection;
    private int _fd;
    private ReadOnlySequence<byte> _sending; // what the kernel reads until the result
    private bool _resultSeen;                // a zero-copy send's result came; its notification has not

    public SendOperation(IoLoop loop)
        : base(loop, OpKind.Send)
    {
        _iov = (IoVec*)NativeMemory.Alloc(MaxIov, (nuint)sizeof(IoVec));
        _msg = (MsgHdr*)NativeMemory.AllocZeroed((nuint)sizeof(MsgHdr));
    }

    public override ILoopMember? Owner => _connection;

    /// <summary>Segments the iovecs cover (at most <see cref="MaxIov"/>).</summary>
    public int Count { get; private set; }

    /// <summary>Bytes the iovecs cover.</summary>
    public long Bytes { get; private set; }

    /// <summary>
    /// Sends the first <see cref="MaxIov"/> non-empty segments of <paramref name="buffer"/>, zero-copy
    /// when <paramref name="zeroCopyFrom"/> is at most their size and every segment is the transport
    /// pool's (leasable). False (nothing sent, this back in the pool) when it could not be queued.
    /// </summary>
    public bool Start(UringConnection connection, int fd, in ReadOnlySequence<byte> buffer, long zeroCopyFrom)
    {
        _connection = connection;
        _fd = fd;
        _sending = buffer;
        Fill(buffer);
        Kind = Bytes >= zeroCopyFrom && TryLease(buffer) ? OpKind.SendZc : OpKind.Send;
        if (Submit()) return true;
        ReleaseLeases();
        Release();
        return false;
    }

    protected override void Prepare(IRing ring)
    {
        if (Kind == OpKind.SendZc) ring.PrepareSendMsgZc(_fd, _msg, UserData);
        else if (Count == 1) ring.PrepareSend(_fd, (byte*)_iov[0].Base, (int)_iov[0].Length, UserData);
        else ring.PrepareSendMsg(_fd, _msg, UserData);
    }

    public override void Complete(in Completion completion)
    {
        UringConnection connection = _connection!;
        if (Kind == OpKind.Send || (!completion.HasMore && (completion.Flags & CompletionFlags.Notification) == 0))
        {
            // A plain send's only completion, or a zero-copy send that failed before it began (no notification comes).
            Finished();
            ReleaseLeases();
            Release();
            connection.OnSent(completion.Result);
        }
        else if ((completion.Flags & CompletionFlags.Notification) != 0)
        {
            Finished();
            ReleaseLeases();
            Release();
            connection.OnZeroCopyNotified(copied: (unchecked((uint)completion.Result) & CompletionFlags.ZeroCopyCopied) != 0);
        }
        else
        {
            _resultSeen = true; // the kernel has read the iovecs; the leases keep the pages until the notification
            connection.OnSent(completion.Result);
        }
    }

    public override void Abandon()
    {
        if (!_resultSeen) PinnedBlockMemoryPool.Retire(_sending); // the kernel may still be reading these blocks
        Retired.Keep(this); // and these iovecs; the leases (never released) keep their blocks from the pool
        _connection = null;
    }

    // Points the iovecs at the first MaxIov non-empty segments.
    private void Fill(in ReadOnlySequence<byte> buffer)
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
            _iov[count].Base = pin.Pointer;
            _iov[count].Length = (nuint)segment.Length;
            bytes += segment.Length;
            count++;
        }
        Bytes = bytes;
        _msg->Iov = _iov;
        _msg->IovLength = (nuint)count;
        Count = count;
    }

    // Leases the blocks behind the filled segments; false, with nothing leased, when one is not the transport pool's memory.
    private bool TryLease(in ReadOnlySequence<byte> buffer)
    {
        if (_leases.Length < Count) _leases = new IKernelLease[MaxIov];
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

    private void ReleaseLeases()
    {
        for (int i = 0; i < _leaseCount; i++)
        {
            _leases[i].ReleaseLease();
            _leases[i] = null!;
        }
        _leaseCount = 0;
    }

    private void Release()
    {
        for (int i = 0; i < Count; i++) _pins[i].Dispose();
        Count = 0;
        _sending = default;
        _resultSeen = false;
        _connection = null;
        Loop.Sends.Return(this);
    }

    /// <summary>Frees the native memory: by the pool only, for a spare (never lent, never in the kernel).</summary>
    public void Free()
    {
        NativeMemory.Free(_iov);
        NativeMemory.Free(_msg);
    }
}

/// <summary>
/// One loop's spare <see cref="SendOperation"/>s; loop thread only. Spares are kept up to the most
/// lent at once in the current or the previous window (one second of the loop's clock), and at
/// least <see cref="MinSpare"/>: under steady load with many sends in flight (hundreds of
/// connections answered in one iteration) each send reuses one instead of allocating, and a burst's
/// peak is freed within two windows after it, so it does not stay behind as idle memory. The loop
/// wakes for that trim while it holds more spares than that window can still justify
/// (<see cref="HoldsExcess"/>).
/// </summary>
internal sealed class SendOperationPool(Func<SendOperation> create)
{
    public const int MinSpare = 32;
    public const long WindowMilliseconds = 1000;
    private readonly Stack<SendOperation> _free = new();
    private int _lent;              // out with their connections (one the kernel never gave back stays counted)
    private int _peak;              // most lent at once in this window
    private int _limit = MinSpare;  // spares kept: at least MinSpare and the last window's peak
    private long _windowStart;

    public SendOperation Rent()
    {
        if (!_free.TryPop(out SendOperation? send))
        {
            send = create();
            Created++;
        }
        if (++_lent > _peak) _peak = _lent;
        return send;
    }

    /// <summary>A send's memory is no longer the kernel's (its final completion or notification, or a failed submit).</summary>
    public void Return(SendOperation send)
    {
        _lent--;
        if (_free.Count < Math.Max(_limit, _peak)) _free.Push(send);
        else send.Free();
    }

    /// <summary>
    /// More spares than <see cref="MinSpare"/> and than are lent: the loop should not sleep past the
    /// next window's end. (Spares up to the lent count stay anyway: the window's peak covers them;
    /// and a send that comes back wakes the loop.)
    /// </summary>
    public bool HoldsExcess => _free.Count > Math.Max(MinSpare, _lent);

    /// <summary>Spares now (tests; loop thread's state, read as a snapshot).</summary>
    public int SpareCount => _free.Count;

    /// <summary>Lent now (tests; as <see cref="SpareCount"/>).</summary>
    public int LentCount => _lent;

    /// <summary>Allocated in all (tests).</summary>
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

    /// <summary>Frees the spares (lent ones are their sends' until those complete).</summary>
    public void Free()
    {
        while (_free.TryPop(out SendOperation? send)) send.Free();
    }
}
