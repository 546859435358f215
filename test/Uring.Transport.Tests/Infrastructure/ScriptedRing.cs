using Uring.Transport.Internal;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>
/// A ring a test scripts to act like a slow, stuck, older or broken kernel: it holds back the
/// completions the test picks and lets them through at a chosen time (or never), rewrites one
/// completion, hides features and answers their operations with EINVAL as an older kernel would,
/// fails every submit, fails a prepare as a full ring that cannot be flushed does, or outlives its
/// Dispose as the kernel's asynchronous teardown does. It counts the receive and accept operations
/// the transport prepares. Scripted from the test thread, run on the loop thread.
/// </summary>
internal sealed unsafe class ScriptedRing(IRing inner) : DecoratedRing(inner)
{
    private readonly Queue<Completion> _held = new();
    private readonly HashSet<ulong> _heldOperations = new(); // user_data of the held completions
    private readonly Queue<Completion> _invented = new(); // answers the kernel "gave" without being asked
    private Func<Completion, bool>? _hold;
    private long _releaseAt = long.MaxValue; // Environment.TickCount64
    private Func<Completion, Completion?>? _rewriteOnce;
    private int _failWith;
    private RingFeatures _hidden;
    private int _multishotRecvs, _singleRecvs, _multishotAccepts, _singleAccepts, _zeroCopySends, _directRecvs;
    private long _lastDirectRecv; // address of the last plain recv's buffer
    private int _lastRecvDirect;  // 1 when the last receive prepared was a plain recv
    private int _heldCount;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _failingPrepares = new();
    private TimeSpan _innerOutlivesDispose;

    public int MultishotRecvs => Volatile.Read(ref _multishotRecvs);
    public int SingleRecvs => Volatile.Read(ref _singleRecvs);
    public int MultishotAccepts => Volatile.Read(ref _multishotAccepts);
    public int SingleAccepts => Volatile.Read(ref _singleAccepts);
    public int Receives => MultishotRecvs + SingleRecvs;
    public int ZeroCopySends => Volatile.Read(ref _zeroCopySends);

    /// <summary>Completions held back now.</summary>
    public int Held => Volatile.Read(ref _heldCount);

    /// <summary>
    /// The next <paramref name="count"/> calls of the prepare method <paramref name="prepare"/> (its
    /// name, e.g. nameof(IRing.PrepareSend)) throw as a full submission queue that cannot be flushed
    /// does (RingException, EBUSY), before anything reaches the ring.
    /// </summary>
    public void FailPrepares(string prepare, int count = 1) => _failingPrepares[prepare] = count;

    /// <summary>
    /// Dispose returns at once, but the real ring is closed only <paramref name="delay"/> later (on
    /// another thread): the kernel's ring teardown is asynchronous, and what the ring still had armed
    /// (an accept above all) stays in the kernel until it has run.
    /// </summary>
    public ScriptedRing OutliveDispose(TimeSpan delay)
    {
        _innerOutlivesDispose = delay;
        return this;
    }

    public override void Dispose()
    {
        if (_innerOutlivesDispose <= TimeSpan.Zero) Inner.Dispose();
        else _ = Task.Delay(_innerOutlivesDispose).ContinueWith(_ => Inner.Dispose(), TaskScheduler.Default);
    }

    private void ThrowIfFailing(string prepare)
    {
        while (_failingPrepares.TryGetValue(prepare, out int left) && left > 0)
        {
            if (_failingPrepares.TryUpdate(prepare, left - 1, left))
                throw new RingException("io_uring_enter (SQ full)", -Errno.EBUSY);
        }
    }

    /// <summary>Plain recvs (into a buffer of the caller's, no provided buffer) prepared.</summary>
    public int DirectRecvs => Volatile.Read(ref _directRecvs);

    /// <summary>The buffer the last plain recv was prepared with.</summary>
    public nint LastDirectRecvBuffer => (nint)Volatile.Read(ref _lastDirectRecv);

    /// <summary>Whether the last receive prepared was a plain recv (not into a provided buffer).</summary>
    public bool LastRecvWasDirect => Volatile.Read(ref _lastRecvDirect) == 1;

    /// <summary>Whether no receive of any kind was prepared for 100 ms (blocks that long): the last one's completion is held or has not come.</summary>
    public bool ReceivesSettled()
    {
        int before = DirectRecvs + Receives;
        Thread.Sleep(100);
        return DirectRecvs + Receives == before;
    }

    /// <summary>Where <paramref name="memory"/> starts (pool memory is pinned: the address holds).</summary>
    public static nint AddressOf(Memory<byte> memory)
    {
        using System.Buffers.MemoryHandle pin = memory.Pin();
        return (nint)pin.Pointer;
    }

    /// <summary>From now on, completions for which <paramref name="predicate"/> holds are kept back.</summary>
    public void HoldWhere(Func<Completion, bool> predicate) => Volatile.Write(ref _hold, predicate);

    /// <summary>Held completions go through at <paramref name="tick"/>: the loop's wait that crosses it returns just after it.</summary>
    public void ReleaseAt(long tick)
    {
        Volatile.Write(ref _releaseAt, tick);
        Inner.Wake(); // a loop asleep in the kernel would not look again until something else happens
    }

    /// <summary>The first completion <paramref name="rewrite"/> answers for (non-null) is replaced by that answer.</summary>
    public void RewriteOnce(Func<Completion, Completion?> rewrite) => Volatile.Write(ref _rewriteOnce, rewrite);

    /// <summary>From now on, SubmitAndWait answers <paramref name="errno"/> (negative) without reaching the kernel.</summary>
    /// <remarks>
    /// With <paramref name="releaseHeld"/>, the held completions are released at the same time: they
    /// are what the failed ring had posted, there for the loop to read without entering it.
    /// </remarks>
    public void FailSubmitsWith(int errno, bool releaseHeld = false)
    {
        if (releaseHeld) Volatile.Write(ref _releaseAt, Environment.TickCount64);
        Volatile.Write(ref _failWith, errno);
        Inner.Wake(); // a loop asleep in the kernel would not notice until its next call
    }

    /// <summary>
    /// Reports the ring without <paramref name="features"/>; multishot receives and accepts, when
    /// hidden, are answered EINVAL (what kernels before 6.0 / 5.19 answer) instead of reaching the kernel.
    /// Set before the loop starts (from the DecorateRing hook).
    /// </summary>
    public ScriptedRing Hide(RingFeatures features)
    {
        _hidden = features;
        return this;
    }

    /// <summary>Whether a completion is the transport's <paramref name="kind"/> of operation.</summary>
    public static bool Is(in Completion c, OpKind kind) => UserData.Kind(c.UserData) == kind;

    public override RingFeatures Features => Inner.Features & ~_hidden;

    private bool Released => Environment.TickCount64 >= Volatile.Read(ref _releaseAt);

    public override int SubmitAndWait(int minComplete, int timeoutMs = -1)
    {
        int fail = Volatile.Read(ref _failWith);
        if (fail != 0)
        {
            Thread.Sleep(1); // what a failing enter costs, roughly: the loop must not be able to spin on it
            return fail;
        }
        if (_invented.Count > 0) return Inner.SubmitAndWait(0, 0); // answers are waiting: do not sleep
        if (_held.Count > 0)
        {
            long releaseAt = Volatile.Read(ref _releaseAt);
            long now = Environment.TickCount64;
            if (releaseAt != long.MaxValue)
            {
                if (now >= releaseAt - 200)
                {
                    // Return just after the release time, with the held completions ready to drain.
                    if (releaseAt > now) Thread.Sleep((int)(releaseAt - now));
                    return Inner.SubmitAndWait(0, 0);
                }
                long until = releaseAt - 200 - now;
                timeoutMs = timeoutMs < 0 ? (int)until : (int)Math.Min(timeoutMs, until);
            }
        }
        int submitted = Inner.SubmitAndWait(minComplete, timeoutMs);
        // Failed while this call waited: the enter that returns now is the first to fail.
        return Volatile.Read(ref _failWith) is var failed and not 0 ? failed : submitted;
    }

    public override int DrainCompletions(Span<Completion> destination)
    {
        int n = 0;
        while (n < destination.Length && _invented.TryDequeue(out Completion invented)) destination[n++] = invented;
        if (Released)
            while (n < destination.Length && _held.TryDequeue(out Completion held)) destination[n++] = held;
        if (_held.Count == 0) _heldOperations.Clear();
        Volatile.Write(ref _heldCount, _held.Count);
        Span<Completion> rest = destination.Slice(n);
        int drained = Inner.DrainCompletions(rest);
        Func<Completion, bool>? hold = Released ? null : Volatile.Read(ref _hold);
        int kept = 0;
        for (int i = 0; i < drained; i++)
        {
            Completion c = rest[i];
            if (Volatile.Read(ref _rewriteOnce) is { } rewrite && rewrite(c) is Completion replaced)
            {
                Volatile.Write(ref _rewriteOnce, null);
                c = replaced;
            }
            // An operation's completions keep their order, as the kernel's do: once one of them is
            // held, the ones after it wait behind it (a final completion must not overtake its data).
            if ((hold is not null && hold(c)) || _heldOperations.Contains(c.UserData))
            {
                _held.Enqueue(c);
                _heldOperations.Add(c.UserData);
                Volatile.Write(ref _heldCount, _held.Count);
            }
            else
            {
                rest[kept++] = c;
            }
        }
        return n + kept;
    }

    public override void PrepareRecvMultishot(int fd, ushort bufferGroup, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareRecvMultishot));
        Interlocked.Increment(ref _multishotRecvs);
        Volatile.Write(ref _lastRecvDirect, 0);
        if ((_hidden & RingFeatures.MultishotRecv) != 0) _invented.Enqueue(new Completion(userData, -Errno.EINVAL, 0));
        else base.PrepareRecvMultishot(fd, bufferGroup, userData);
    }

    public override void PrepareRecv(int fd, byte* buffer, int length, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareRecv));
        Volatile.Write(ref _lastDirectRecv, (long)buffer);
        Volatile.Write(ref _lastRecvDirect, 1);
        Interlocked.Increment(ref _directRecvs);
        base.PrepareRecv(fd, buffer, length, userData);
    }

    public override void PrepareRecvBufferSelect(int fd, ushort bufferGroup, ulong userData, int maxLength = 0)
    {
        ThrowIfFailing(nameof(PrepareRecvBufferSelect));
        Interlocked.Increment(ref _singleRecvs);
        Volatile.Write(ref _lastRecvDirect, 0);
        base.PrepareRecvBufferSelect(fd, bufferGroup, userData, maxLength);
    }

    public override void PrepareAcceptMultishot(int fd, int flags, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareAcceptMultishot));
        Interlocked.Increment(ref _multishotAccepts);
        if ((_hidden & RingFeatures.MultishotAccept) != 0) _invented.Enqueue(new Completion(userData, -Errno.EINVAL, 0));
        else base.PrepareAcceptMultishot(fd, flags, userData);
    }

    public override void PrepareSendMsgZc(int fd, MsgHdr* message, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareSendMsgZc));
        Interlocked.Increment(ref _zeroCopySends);
        base.PrepareSendMsgZc(fd, message, userData);
    }

    public override void PrepareAccept(int fd, int flags, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareAccept));
        Interlocked.Increment(ref _singleAccepts);
        base.PrepareAccept(fd, flags, userData);
    }

    public override void PrepareSend(int fd, byte* buffer, int length, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareSend));
        base.PrepareSend(fd, buffer, length, userData);
    }

    public override void PrepareSendMsg(int fd, MsgHdr* message, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareSendMsg));
        base.PrepareSendMsg(fd, message, userData);
    }

    public override void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareConnect));
        base.PrepareConnect(fd, addr, addrLen, userData);
    }

    public override void PrepareClose(int fd, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareClose));
        base.PrepareClose(fd, userData);
    }

    public override void PrepareCancel(ulong targetUserData, ulong userData)
    {
        ThrowIfFailing(nameof(PrepareCancel));
        base.PrepareCancel(targetUserData, userData);
    }
}
