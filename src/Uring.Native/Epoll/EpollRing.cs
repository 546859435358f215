using System.Numerics;
using System.Runtime.InteropServices;
using Uring.Native.Epoll;
using Uring.Native.Interop;
using static Uring.Native.Linux;

namespace Uring.Native;

/// <summary>
/// An <see cref="IRing"/> over edge-triggered epoll, for kernels or sandboxes without io_uring.
/// Prepared operations are queued; <see cref="SubmitAndWait"/> tries each at once without blocking
/// (as io_uring's FAST_POLL does), parks the ones that would block on their fd, and performs them on
/// readiness, posting the same completions (user_data, result, flags) the kernel would. Each
/// operation's emulation sits beside its io_uring preparation, in Ops/.
/// </summary>
/// <remarks>
/// Every fd an operation waits on is added to the epoll set once, with
/// EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET. Operation records, fd states and the completion queue
/// are pooled arrays, so the steady state allocates nothing.
/// </remarks>
internal sealed unsafe partial class EpollRing : IRing
{
    private const int MaxEntries = 32768;        // IORING_MAX_ENTRIES
    private const int EventBatch = 256;          // epoll events harvested per epoll_wait
    private const int MultishotBudget = 32;      // completions one multishot op may post per edge (the kernel's MULTISHOT_MAX_RETRY), for fairness
    private const ulong WakeKey = ulong.MaxValue;
    private const uint Registration = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    private const uint InInterest = EPOLLIN | EPOLLRDHUP;
    private const uint OutInterest = EPOLLOUT;
    private const uint Failure = EPOLLERR | EPOLLHUP;

    // What the emulation offers of the optional features (the others need the kernel's io_uring).
    private const RingFeatures EmulatedFeatures =
        RingFeatures.MultishotAccept | RingFeatures.MultishotRecv | RingFeatures.CancelAny | RingFeatures.SyncCancel;

    private readonly OperationTable _ops;
    private readonly FdTable _fds = new();
    private readonly CompletionBacklog _completions;
    private readonly Dictionary<ulong, int> _byUserData = new();
    private readonly int[] _submissions;
    private int _submissionCount;
    private long _prepared;
    private ProvidedBufferRing?[] _bufferRings = new ProvidedBufferRing?[4];
    private EpollEvent* _events;
    private int _epollFd;
    // The wake eventfd: its own lifetime (see EventFdHandle), so a late Wake never writes into a reused number.
    private readonly EventFdHandle _wake;
    private readonly int _wakeFd;
    private int _readyHead = -1;
    private bool _disposed;

    /// <summary>Creates the ring: an epoll instance and the eventfd that <see cref="Wake"/> writes.</summary>
    /// <param name="entries">Submission queue size; rounded up to a power of two and clamped to 32768, as IORING_SETUP_CLAMP does.</param>
    /// <param name="allowed">The optional features it may use (of those it emulates).</param>
    /// <exception cref="RingException">epoll_create1 or eventfd failed.</exception>
    public EpollRing(int entries, RingFeatures allowed = RingFeatures.All)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(entries, 1);
        Features = EmulatedFeatures & allowed;
        int size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Min(entries, MaxEntries));
        SubmissionQueueSize = size;
        CompletionQueueSize = size * 4;
        _submissions = new int[size];
        _ops = new OperationTable(size * 2);
        _completions = new CompletionBacklog(CompletionQueueSize);

        _epollFd = Libc.epoll_create1(EPOLL_CLOEXEC);
        if (_epollFd < 0) throw new RingException("epoll_create1", Libc.Errno);
        try
        {
            _wake = EventFdHandle.Create(EFD_NONBLOCK | EFD_CLOEXEC);
        }
        catch
        {
            Libc.close(_epollFd);
            throw;
        }
        _wakeFd = _wake.Fd;
        var wake = new EpollEvent { Events = EPOLLIN | EPOLLET, Data = WakeKey };
        if (Libc.epoll_ctl(_epollFd, EPOLL_CTL_ADD, _wakeFd, &wake) < 0)
        {
            int errno = Libc.Errno;
            _wake.Dispose();
            Libc.close(_epollFd);
            throw new RingException("epoll_ctl(ADD eventfd)", errno);
        }
        _events = (EpollEvent*)NativeMemory.AllocZeroed((nuint)(EventBatch * EpollEvent.Stride + sizeof(EpollEvent))); // slack: the last element is read as 16 bytes
    }

    /// <inheritdoc />
    /// <remarks>Multishot accept and receive, cancel-any and synchronous cancel, which the emulation provides itself.</remarks>
    public RingFeatures Features { get; }

    /// <inheritdoc />
    public string Description => "edge-triggered epoll";

    /// <inheritdoc />
    public long Prepared => _prepared;

    /// <inheritdoc />
    public long Consumed => _prepared - _submissionCount;

    /// <inheritdoc />
    public int SubmissionQueueSize { get; }

    /// <inheritdoc />
    /// <remarks>Reported as 4x the submission queue, like the kernel ring; the emulated queue grows instead of overflowing.</remarks>
    public int CompletionQueueSize { get; }

    /// <inheritdoc />
    /// <remarks>Nothing to enable for epoll.</remarks>
    public void Enable() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <inheritdoc />
    public int SubmitAndWait(int minComplete, int timeoutMs = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int submitted = SubmitQueued();
        // Fds that hit the multishot budget last time go on now, after this call's submissions
        // (a cancel among them stops them), and only once per call: the caller sees their
        // completions before more arrive, as with the kernel's bounded multishot rounds.
        ProcessReadyList();
        long deadline = timeoutMs > 0 ? Environment.TickCount64 + timeoutMs : 0;
        while (true)
        {
            // Enough completions already, or a poll-only call: one look at epoll so other fds progress, no sleep.
            bool lookOnly = _completions.Count >= minComplete || timeoutMs == 0;
            int wait = lookOnly || _readyHead >= 0 ? 0
                : timeoutMs < 0 ? -1
                : (int)Math.Max(0, deadline - Environment.TickCount64);

            int n = Libc.epoll_wait(_epollFd, _events, EventBatch, wait);
            if (n < 0)
            {
                int errno = Libc.Errno;
                if (errno != Errno.EINTR) return -errno;
                n = 0;
            }

            bool woken = false;
            for (int i = 0; i < n; i++)
            {
                ulong key = EpollEvent.At(_events, i)->Data;
                if (key == WakeKey)
                {
                    ulong count;
                    Libc.read(_wakeFd, &count, sizeof(ulong)); // resets the counter; EAGAIN only if already drained
                    woken = true;
                }
                else if (_fds.HasPending((int)key))
                {
                    RunFd((int)key, EpollEvent.At(_events, i)->Events, fromEvent: true);
                }
            }

            if (lookOnly || woken || _completions.Count >= minComplete) return submitted;
            if (n == 0 && _readyHead >= 0) ProcessReadyList(); // nothing else to do: go on with capped fds
            if (timeoutMs > 0 && Environment.TickCount64 >= deadline) return submitted;
        }
    }

    /// <inheritdoc />
    public int DrainCompletions(Span<Completion> destination) => _completions.Drain(destination);

    /// <inheritdoc />
    public void Wake() => _wake.TrySignal();

    /// <inheritdoc />
    public int RegisterBufferRing(ProvidedBufferRing buffers)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        int group = buffers.GroupId;
        if (group >= _bufferRings.Length)
            Array.Resize(ref _bufferRings, Math.Max(group + 1, _bufferRings.Length * 2));
        if (_bufferRings[group] is not null) return -Errno.EEXIST;
        _bufferRings[group] = buffers;
        return 0;
    }

    /// <inheritdoc />
    public int UnregisterBufferRing(ProvidedBufferRing buffers)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        int group = buffers.GroupId;
        if (group >= _bufferRings.Length || _bufferRings[group] is null) return -Errno.ENOENT;
        _bufferRings[group] = null; // receives still armed on the group now end with -ENOBUFS, as in the kernel
        return 0;
    }

    /// <inheritdoc />
    public int AvailableBuffers(ProvidedBufferRing buffers)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        return buffers.EmulatedAvailable;
    }

    /// <summary>
    /// Closes the epoll instance; the wake eventfd closes once no thread is inside <see cref="Wake"/>.
    /// Pending operations are dropped without completions, and the files that only they kept open
    /// (closed while operations were pending on them) are closed, as the kernel's ring teardown does.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        CloseOrphans();
        _wake.Dispose();
        Libc.close(_epollFd);
        _epollFd = -1;
        NativeMemory.Free(_events);
        _events = null;
    }

    // A pooled record for a new operation, filled by the op's prepare (Ops/) and then queued.
    private ref PendingOperation Allocate(int fd, ulong userData, uint interest,
        delegate*<EpollRing, ref PendingOperation, uint, Outcome> attempt, out int id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        id = _ops.Allocate();
        ref PendingOperation op = ref _ops[id];
        op.Fd = fd;
        op.UserData = userData;
        op.Interest = interest;
        op.Issue = &IssueOnFd;
        op.Attempt = attempt;
        return ref op;
    }

    // A full queue is submitted first, as liburing's prep helpers leave it to the caller: nothing
    // prepared is ever refused.
    private void Queue(int id)
    {
        if (_submissionCount == _submissions.Length) SubmitQueued();
        _submissions[_submissionCount++] = id;
        _prepared++;
    }

    // Adds fd to the epoll set, or re-arms it when already there. MOD/ADD both report readiness that
    // already exists, so calling this after an EAGAIN cannot miss an edge.
    private int Arm(int fd, ref FdState state)
    {
        var ev = new EpollEvent { Events = Registration, Data = (uint)fd };
        if ((state.Flags & FdFlags.Registered) != 0)
        {
            if (Libc.epoll_ctl(_epollFd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
            int errno = Libc.Errno;
            if (errno != Errno.ENOENT) return -errno;
            // Closed behind our back (not through PrepareClose) and the number reused: forget the old file.
            state.Flags &= FdFlags.ReadyListed;
        }
        if (Libc.epoll_ctl(_epollFd, EPOLL_CTL_ADD, fd, &ev) < 0)
        {
            int errno = Libc.Errno;
            if (errno != Errno.EEXIST) return -errno;
            if (Libc.epoll_ctl(_epollFd, EPOLL_CTL_MOD, fd, &ev) < 0) return -Libc.Errno;
        }
        state.Flags |= FdFlags.Registered;
        return 0;
    }

    private void MarkReady(int fd, ref FdState state, uint mask)
    {
        state.ReadyMask |= mask;
        if ((state.Flags & FdFlags.ReadyListed) != 0) return;
        state.Flags |= FdFlags.ReadyListed;
        state.NextReady = _readyHead;
        _readyHead = fd;
    }

    // Fds whose multishot op stopped at its budget: replay their edge without waiting for a new one.
    private void ProcessReadyList()
    {
        int fd = _readyHead;
        _readyHead = -1;
        while (fd >= 0)
        {
            ref FdState state = ref _fds[fd];
            int next = state.NextReady;
            uint mask = state.ReadyMask;
            state.ReadyMask = 0;
            state.Flags &= ~FdFlags.ReadyListed;
            if (state.Head != 0) RunFd(fd, mask, fromEvent: false);
            fd = next;
        }
    }
}
