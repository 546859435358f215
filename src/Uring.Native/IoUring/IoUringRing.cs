using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Uring.Native.Interop;
using Uring.Native.IoUring;
using static Uring.Native.IoUring.IoUringConstants;

namespace Uring.Native;

/// <summary>
/// The kernel's io_uring. SQEs are written straight into the mmapped submission queue; one
/// <c>io_uring_enter</c> per <see cref="SubmitAndWait"/> submits everything queued and reaps.
/// </summary>
internal sealed unsafe partial class IoUringRing : IRing
{
    // user_data reserved for the ring's own eventfd read (the wake); never surfaced.
    private const ulong WakeUserData = ulong.MaxValue;

    // Where wake reads land. Shared and never freed: after Dispose the kernel may still finish a
    // pending read from its exit work, and it must not write into memory that was reused.
    private static readonly ulong* s_wakeSink = (ulong*)NativeMemory.AlignedAlloc(64, 64);

    // Flags asked for, newest kernel feature first: on EINVAL we drop them in this order.
    private static readonly (uint Flag, RingFeatures Feature)[] s_optionalSetupFlags =
    [
        (IORING_SETUP_NO_SQARRAY, RingFeatures.NoSqArray),
        (IORING_SETUP_DEFER_TASKRUN, RingFeatures.DeferTaskrun),
        (IORING_SETUP_SINGLE_ISSUER, RingFeatures.SingleIssuer),
        (IORING_SETUP_COOP_TASKRUN, RingFeatures.CoopTaskrun),
        (IORING_SETUP_SUBMIT_ALL, RingFeatures.SubmitAll),
        (IORING_SETUP_R_DISABLED, RingFeatures.None),
    ];

    private readonly int _ringFd;
    // The wake eventfd: its own lifetime (see EventFdHandle), so a late Wake from any thread
    // never writes into a reused fd number. The armed READ holds the kernel's own file reference.
    private readonly EventFdHandle _wake;
    private readonly byte* _sqRing;
    private readonly nuint _sqRingSize;
    private readonly byte* _cqRing;
    private readonly nuint _cqRingSize;
    private readonly IoUringSqe* _sqes;
    private readonly nuint _sqesSize;
    private readonly uint* _sqHead;
    private readonly uint* _sqTail;
    private readonly uint* _sqFlags;
    private readonly uint _sqMask;
    private readonly uint* _cqHead;
    private readonly uint* _cqTail;
    private readonly uint _cqMask;
    private readonly IoUringCqe* _cqes;
    private readonly bool[] _supported = new bool[256];
    private uint _sqeTail;          // our producer index; published to *_sqTail on submit
    private long _prepared;         // SQEs written so far (64-bit: _sqeTail wraps)
    private readonly CompletionBacklog _backlog = new(16); // CQEs moved out of the CQ when the kernel answered EBUSY
    private int _enterFd;           // the ring fd, or its registered index (IORING_ENTER_REGISTERED_RING)
    private uint _enterFlags;
    private bool _enabled;
    private bool _disposed;
    private bool _wakeUnarmed;  // the wake read could not be re-armed (full SQ): SubmitAndWait arms it

    private IoUringRing(int ringFd, in IoUringParams p, EventFdHandle wake, RingFeatures allowed)
    {
        _ringFd = ringFd;
        _enterFd = ringFd;
        _wake = wake;
        SetupFlags = p.Flags;
        KernelFeatureFlags = p.Features;
        SubmissionQueueSize = (int)p.SqEntries;
        CompletionQueueSize = (int)p.CqEntries;

        bool noSqArray = (p.Flags & IORING_SETUP_NO_SQARRAY) != 0;
        _sqRingSize = p.SqOff.Array + (noSqArray ? 0 : p.SqEntries * sizeof(uint));
        _cqRingSize = p.CqOff.Cqes + p.CqEntries * (uint)sizeof(IoUringCqe);
        bool singleMmap = (p.Features & IORING_FEAT_SINGLE_MMAP) != 0;
        if (singleMmap) _sqRingSize = _cqRingSize = Math.Max(_sqRingSize, _cqRingSize);

        // A mapping holds a reference to the ring: on a failure part-way, undo the ones made.
        _sqesSize = p.SqEntries * (uint)sizeof(IoUringSqe);
        _sqRing = Map(ringFd, _sqRingSize, IORING_OFF_SQ_RING, "mmap(SQ ring)");
        try
        {
            _cqRing = singleMmap ? _sqRing : Map(ringFd, _cqRingSize, IORING_OFF_CQ_RING, "mmap(CQ ring)");
            try
            {
                _sqes = (IoUringSqe*)Map(ringFd, _sqesSize, IORING_OFF_SQES, "mmap(SQEs)");
            }
            catch
            {
                if (!singleMmap) Libc.munmap(_cqRing, _cqRingSize);
                throw;
            }
        }
        catch
        {
            Libc.munmap(_sqRing, _sqRingSize);
            throw;
        }

        _sqHead = (uint*)(_sqRing + p.SqOff.Head);
        _sqTail = (uint*)(_sqRing + p.SqOff.Tail);
        _sqFlags = (uint*)(_sqRing + p.SqOff.Flags);
        _sqMask = *(uint*)(_sqRing + p.SqOff.RingMask);
        _cqHead = (uint*)(_cqRing + p.CqOff.Head);
        _cqTail = (uint*)(_cqRing + p.CqOff.Tail);
        _cqMask = *(uint*)(_cqRing + p.CqOff.RingMask);
        _cqes = (IoUringCqe*)(_cqRing + p.CqOff.Cqes);

        if (!noSqArray)
        {
            // Identity SQ index array: slot i always holds SQE i (NO_SQARRAY does the same without it).
            uint* array = (uint*)(_sqRing + p.SqOff.Array);
            for (uint i = 0; i < p.SqEntries; i++) array[i] = i;
        }
        _sqeTail = *_sqTail;

        ProbeOpcodes();
        Features = allowed & FeaturesOfSetupFlags(p.Flags, allowed);
    }

    /// <inheritdoc />
    public string Description => "setup flags " + DescribeSetupFlags(SetupFlags);

    /// <inheritdoc />
    public int SubmissionQueueSize { get; }

    /// <inheritdoc />
    public int CompletionQueueSize { get; }

    /// <inheritdoc />
    public RingFeatures Features { get; private set; }

    /// <inheritdoc />
    public long Prepared => _prepared;

    /// <inheritdoc />
    public long Consumed
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this); // the SQ head is unmapped after Dispose
            return _prepared - (uint)(_sqeTail - Volatile.Read(ref *_sqHead));
        }
    }

    /// <summary>The IORING_SETUP_* flags the kernel accepted.</summary>
    public uint SetupFlags { get; }

    /// <summary>The IORING_FEAT_* flags the kernel reported.</summary>
    public uint KernelFeatureFlags { get; }

    /// <summary>Names of the accepted setup flags, for logs.</summary>
    public string DescribeSetupFlags() => DescribeSetupFlags(SetupFlags);

    internal static string DescribeSetupFlags(uint flags)
    {
        var names = new List<string>();
        if ((flags & IORING_SETUP_CQSIZE) != 0) names.Add("CQSIZE");
        if ((flags & IORING_SETUP_R_DISABLED) != 0) names.Add("R_DISABLED");
        if ((flags & IORING_SETUP_SUBMIT_ALL) != 0) names.Add("SUBMIT_ALL");
        if ((flags & IORING_SETUP_COOP_TASKRUN) != 0) names.Add("COOP_TASKRUN");
        if ((flags & IORING_SETUP_SINGLE_ISSUER) != 0) names.Add("SINGLE_ISSUER");
        if ((flags & IORING_SETUP_DEFER_TASKRUN) != 0) names.Add("DEFER_TASKRUN");
        if ((flags & IORING_SETUP_NO_SQARRAY) != 0) names.Add("NO_SQARRAY");
        return string.Join('|', names);
    }

    // Setup-flag features are what the ring got; the rest are per-process probe results.
    private static RingFeatures FeaturesOfSetupFlags(uint flags, RingFeatures allowed)
    {
        RingFeatures result = allowed;
        foreach (var (flag, feature) in s_optionalSetupFlags)
            if (feature != RingFeatures.None && (flags & flag) == 0) result &= ~feature;
        return result;
    }

    /// <summary>
    /// Creates a ring with <paramref name="entries"/> SQ entries and a 4x CQ, using the features of
    /// <paramref name="allowed"/> the kernel has (see <see cref="KernelProbe"/>), not yet enabled.
    /// </summary>
    /// <exception cref="RingException">io_uring_setup failed (ENOSYS, EPERM, ENOMEM...).</exception>
    public static IoUringRing Create(int entries, RingFeatures allowed = RingFeatures.All)
    {
        KernelProbe probe = KernelProbe.Current;
        if (probe.Problem is not null && probe.SetupErrno != 0) throw new RingException("io_uring_setup", probe.SetupErrno);
        allowed &= probe.Features;
        uint wanted = 0;
        foreach (var (flag, feature) in s_optionalSetupFlags)
            if (feature == RingFeatures.None || (allowed & feature) != 0) wanted |= flag;
        return CreateWithFlags(Math.Max(1, entries), wanted & probe.SetupFlags, allowed);
    }

    /// <summary>
    /// io_uring_setup with <paramref name="optional"/> setup flags, dropping those the kernel refuses
    /// (EINVAL) one at a time, newest first. The probe calls it with every flag to learn the set.
    /// </summary>
    internal static IoUringRing CreateWithFlags(int entries, uint optional, RingFeatures allowed)
    {
        IoUringParams p;
        int fd;
        int dropIndex = 0;
        while (true)
        {
            p = default;
            p.Flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | optional;
            p.CqEntries = (uint)entries * 4;
            fd = (int)Libc.syscall(Libc.SYS_io_uring_setup, entries, (long)&p, 0, 0, 0, 0);
            if (fd >= 0) break;
            int errno = Libc.Errno;
            while (errno == Errno.EINVAL && dropIndex < s_optionalSetupFlags.Length && (optional & s_optionalSetupFlags[dropIndex].Flag) == 0)
                dropIndex++;
            if (errno == Errno.EINVAL && dropIndex < s_optionalSetupFlags.Length)
            {
                optional &= ~s_optionalSetupFlags[dropIndex++].Flag;
                continue;
            }
            throw new RingException("io_uring_setup", errno);
        }

        // Blocking eventfd: io_uring polls it; a non-blocking one could complete with EAGAIN.
        EventFdHandle wake;
        try
        {
            wake = EventFdHandle.Create(Linux.EFD_CLOEXEC);
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
        try
        {
            return new IoUringRing(fd, p, wake, allowed);
        }
        catch
        {
            wake.Dispose();
            Libc.close(fd);
            throw;
        }
    }

    private static byte* Map(int fd, nuint size, long offset, string what)
    {
        void* ptr = Libc.mmap(null, size, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED | Linux.MAP_POPULATE, fd, offset);
        if (ptr == (void*)-1) throw new RingException(what, Libc.Errno);
        return (byte*)ptr;
    }

    private void ProbeOpcodes()
    {
        const int opsLen = 256;
        int size = 16 + opsLen * 8;
        byte* probe = stackalloc byte[size];
        new Span<byte>(probe, size).Clear();
        if (Register(IORING_REGISTER_PROBE, probe, opsLen) < 0) return; // pre-5.6: leave all unsupported
        int lastOp = probe[0];
        int count = probe[1];
        for (int i = 0; i < count && i <= lastOp; i++)
        {
            byte* op = probe + 16 + i * 8;
            if ((*(ushort*)(op + 2) & IO_URING_OP_SUPPORTED) != 0) _supported[op[0]] = true;
        }
    }

    /// <summary>True when the kernel's probe lists <paramref name="opcode"/>.</summary>
    public bool Supports(IoUringOp opcode) => _supported[(byte)opcode];

    /// <inheritdoc />
    /// <remarks>Also registers the ring fd with the calling thread (IORING_REGISTER_RING_FDS), when the kernel can.</remarks>
    public void Enable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_enabled) return;
        if ((SetupFlags & IORING_SETUP_R_DISABLED) != 0)
        {
            int r = Register(IORING_REGISTER_ENABLE_RINGS, null, 0);
            if (r < 0) throw new RingException("IORING_REGISTER_ENABLE_RINGS", r);
        }
        if ((Features & RingFeatures.RegisteredRingFd) != 0)
        {
            // The registered index belongs to this thread's io_uring context: only the owner enters.
            IoUringRsrcUpdate update = new() { Offset = uint.MaxValue, Data = (ulong)_ringFd };
            if (Register(IORING_REGISTER_RING_FDS, &update, 1) == 1)
            {
                _enterFd = (int)update.Offset;
                _enterFlags = IORING_ENTER_REGISTERED_RING;
            }
            else
            {
                Features &= ~RingFeatures.RegisteredRingFd; // e.g. the thread's 16 slots are taken
            }
        }
        _enabled = true;
        ArmWake();
    }

    private void ArmWake() => PrepareRead(_wake.Fd, (byte*)s_wakeSink, sizeof(ulong), WakeUserData);

    // Re-arms the wake read after its completion was reaped. A full SQ that cannot be flushed must not
    // fail the drain (its completions are consumed already, accepted fds among them): the next
    // SubmitAndWait arms it instead, before it may sleep.
    private void RearmWake()
    {
        try
        {
            ArmWake();
        }
        catch (RingException)
        {
            _wakeUnarmed = true;
        }
    }

    /// <inheritdoc />
    public void Wake() => _wake.TrySignal();

    internal int Register(uint opcode, void* arg, uint nrArgs) =>
        Libc.Result(Libc.syscall(Libc.SYS_io_uring_register, _ringFd, opcode, (long)arg, nrArgs, 0, 0));

    private int Enter(uint toSubmit, uint minComplete, uint flags, void* arg, nuint argSize) =>
        Libc.Result(Libc.syscall(Libc.SYS_io_uring_enter, _enterFd, toSubmit, minComplete, flags | _enterFlags, (long)arg, (long)argSize));

    private uint Unsubmitted => _sqeTail - Volatile.Read(ref *_sqHead);

    private int CompletionsReady => _backlog.Count + (int)(Volatile.Read(ref *_cqTail) - *_cqHead);

    /// <inheritdoc />
    public int SubmitAndWait(int minComplete, int timeoutMs = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_wakeUnarmed)
        {
            _wakeUnarmed = false;
            RearmWake(); // (its own flush of a full SQ comes back here with the flag clear)
        }
        Volatile.Write(ref *_sqTail, _sqeTail); // release: SQE contents before the tail
        uint toSubmit = Unsubmitted;
        uint wait = minComplete > 0 && CompletionsReady < minComplete && timeoutMs != 0 ? (uint)minComplete : 0;

        IoUringGeteventsArg arg = default;
        KernelTimespec ts = default;
        uint flags = IORING_ENTER_GETEVENTS; // always: DEFER_TASKRUN completions run only on GETEVENTS
        void* argPtr = null;
        nuint argSize = 0;
        if (wait > 0 && timeoutMs > 0 && (KernelFeatureFlags & IORING_FEAT_EXT_ARG) != 0)
        {
            ts.TvSec = timeoutMs / 1000;
            ts.TvNsec = (timeoutMs % 1000) * 1_000_000L;
            arg.Ts = (ulong)&ts;
            argPtr = &arg;
            argSize = (nuint)sizeof(IoUringGeteventsArg);
            flags |= IORING_ENTER_EXT_ARG;
        }

        int submitted = 0;
        for (int busy = 0; ; )
        {
            int r = Enter(toSubmit, wait, flags, argPtr, argSize);
            if (r >= 0)
            {
                submitted += r;
                return submitted;
            }
            switch (-r)
            {
                case Errno.ETIME:
                    return submitted;
                case Errno.EINTR:
                    if (wait > 0) return submitted; // a signal counts as a wake-up
                    break;
                case Errno.EBUSY:
                case Errno.EAGAIN:
                    // CQ is full (or the kernel is short of memory): make room, then retry without waiting;
                    // a kernel that keeps refusing is the caller's error to handle, not a spin here.
                    Reap(default, toBacklog: true);
                    wait = 0;
                    if (Unsubmitted == 0 && toSubmit > 0) return submitted;
                    if (++busy >= 64) return r;
                    break;
                default:
                    return r;
            }
            toSubmit = Unsubmitted;
        }
    }

    /// <inheritdoc />
    public int DrainCompletions(Span<Completion> destination)
    {
        int n = _backlog.Drain(destination);
        n += Reap(destination.Slice(n), toBacklog: false);
        if (n < destination.Length && (Volatile.Read(ref *_sqFlags) & IORING_SQ_CQ_OVERFLOW) != 0)
        {
            // The kernel holds overflowed CQEs (FEAT_NODROP); GETEVENTS flushes them into the CQ.
            Enter(0, 0, IORING_ENTER_GETEVENTS, null, 0);
            n += Reap(destination.Slice(n), toBacklog: false);
        }
        return n;
    }

    // Consumes CQEs into destination (as many as fit), or with toBacklog every one into the backlog
    // (room in the CQ for the kernel). The ring's own wake reads are re-armed, never surfaced.
    private int Reap(Span<Completion> destination, bool toBacklog)
    {
        uint head = *_cqHead;
        uint tail = Volatile.Read(ref *_cqTail); // acquire: CQE contents after the tail
        int n = 0;
        bool rearmWake = false;
        while (head != tail && (toBacklog || n < destination.Length))
        {
            IoUringCqe* cqe = &_cqes[head & _cqMask];
            head++;
            if (cqe->UserData == WakeUserData)
            {
                rearmWake = true;
                continue;
            }
            ref Completion completion = ref Unsafe.As<IoUringCqe, Completion>(ref *cqe);
            if (toBacklog) _backlog.Add(in completion);
            else destination[n++] = completion;
        }
        Volatile.Write(ref *_cqHead, head); // release: we are done reading those CQEs
        if (rearmWake) RearmWake();
        return n;
    }

    /// <summary>Next free SQE, zeroed. When the SQ is full, submits what it holds first.</summary>
    private IoUringSqe* NextSqe()
    {
        // After Dispose the SQEs are unmapped: a late prepare must fail, not write into them.
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (_sqeTail - Volatile.Read(ref *_sqHead) >= (uint)SubmissionQueueSize)
        {
            int r = SubmitAndWait(0, 0);
            if (r < 0) throw new RingException("io_uring_enter (SQ full)", r);
            if (_sqeTail - Volatile.Read(ref *_sqHead) >= (uint)SubmissionQueueSize)
                Reap(default, toBacklog: true); // nothing was consumed: the kernel wants CQ room
        }
        IoUringSqe* sqe = &_sqes[_sqeTail & _sqMask];
        *sqe = default;
        _sqeTail++;
        _prepared++;
        return sqe;
    }

    // The prepares of the transport's operations are in Ops/, one file per opcode with its epoll
    // emulation; these serve the ring itself (its wake read) and the probe.

    private IoUringSqe* Prep(IoUringOp op, int fd, ulong userData)
    {
        IoUringSqe* sqe = NextSqe();
        sqe->Opcode = (byte)op;
        sqe->Fd = fd;
        sqe->UserData = userData;
        return sqe;
    }

    // An operation on length bytes at address (liburing's io_uring_prep_rw).
    private IoUringSqe* PrepRw(IoUringOp op, int fd, void* address, int length, ulong userData)
    {
        IoUringSqe* sqe = Prep(op, fd, userData);
        sqe->Addr = (ulong)address;
        sqe->Len = (uint)length;
        return sqe;
    }

    /// <summary>A zeroed SQE with opcode, fd and user_data set, for fields no prepare method covers (probing).</summary>
    internal IoUringSqe* PrepareRaw(IoUringOp op, int fd, ulong userData) => Prep(op, fd, userData);

    /// <summary>IORING_OP_NOP (5.1).</summary>
    internal void PrepareNop(ulong userData) => Prep(IoUringOp.Nop, -1, userData);

    /// <summary>IORING_OP_READ (5.6) at offset 0 (an eventfd ignores it).</summary>
    private void PrepareRead(int fd, byte* buffer, int length, ulong userData) => PrepRw(IoUringOp.Read, fd, buffer, length, userData);

    /// <inheritdoc />
    public int RegisterBufferRing(ProvidedBufferRing buffers) => RegisterBufferRing(buffers, 0);

    internal int RegisterBufferRing(ProvidedBufferRing buffers, ushort flags)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        IoUringBufReg reg = default;
        reg.RingAddr = (ulong)buffers.RingAddress;
        reg.RingEntries = (uint)buffers.BufferCount;
        reg.Bgid = buffers.GroupId;
        reg.Flags = flags;
        return Register(IORING_REGISTER_PBUF_RING, &reg, 1);
    }

    /// <inheritdoc />
    public int UnregisterBufferRing(ProvidedBufferRing buffers)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        IoUringBufReg reg = default;
        reg.Bgid = buffers.GroupId;
        return Register(IORING_UNREGISTER_PBUF_RING, &reg, 1);
    }

    /// <inheritdoc />
    /// <remarks>IORING_REGISTER_PBUF_STATUS (6.8): one io_uring_register call.</remarks>
    public int AvailableBuffers(ProvidedBufferRing buffers)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        if ((Features & RingFeatures.BufferRingStatus) == 0) return -Errno.EINVAL;
        IoUringBufStatus status = default;
        status.BufGroup = buffers.GroupId;
        int r = Register(IORING_REGISTER_PBUF_STATUS, &status, 1);
        return r < 0 ? r : (ushort)(buffers.Tail - (ushort)status.Head);
    }

    /// <inheritdoc />
    /// <remarks>IORING_REGISTER_SYNC_CANCEL (6.0), matched by user_data.</remarks>
    public int CancelSync(ulong targetUserData, int timeoutMs)
    {
        if ((Features & RingFeatures.SyncCancel) == 0) return -Errno.EINVAL;
        IoUringSyncCancelReg reg = default;
        reg.Addr = targetUserData;
        reg.Fd = -1;
        reg.Timeout.TvSec = timeoutMs / 1000;
        reg.Timeout.TvNsec = timeoutMs % 1000 * 1_000_000L;
        int r = Register(IORING_REGISTER_SYNC_CANCEL, &reg, 1);
        // With DEFER_TASKRUN the cancelled request's last steps (its wait-queue entry gone, its
        // completion posted, its file let go) are task work that runs only when the owner enters:
        // one enter that waits for nothing, which even a ring that drops completions answers.
        if (r == 0) Enter(0, 0, IORING_ENTER_GETEVENTS, null, 0);
        return r;
    }

    /// <summary>
    /// Unmaps the rings and closes the ring fd (the kernel cancels what is still in flight, in the
    /// background). The wake eventfd closes once no thread is inside <see cref="Wake"/>. Idempotent;
    /// on the owning thread.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if ((_enterFlags & IORING_ENTER_REGISTERED_RING) != 0)
        {
            // The thread's registration holds a reference to the ring: without this, closing the
            // fd would not tear the ring down (nor cancel its requests) until the thread exits.
            IoUringRsrcUpdate update = new() { Offset = (uint)_enterFd };
            Register(IORING_UNREGISTER_RING_FDS, &update, 1);
        }
        Libc.munmap(_sqes, _sqesSize);
        if (_cqRing != _sqRing) Libc.munmap(_cqRing, _cqRingSize);
        Libc.munmap(_sqRing, _sqRingSize);
        Libc.close(_ringFd);
        _wake.Dispose();
    }
}
