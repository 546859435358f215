namespace Uring.Transport.Tests.Infrastructure;

/// <summary>How often a <see cref="FaultInjectingRing"/> injects each kind of fault (probabilities per operation or completion).</summary>
internal sealed record FaultRates
{
    /// <summary>A recv (single-shot, multishot, plain) fails with ENOBUFS, ECONNRESET or ENOMEM instead of being submitted.</summary>
    public double RecvError { get; init; } = 0.01;

    /// <summary>A send or sendmsg fails with ECONNRESET, EPIPE or ENOMEM instead of being submitted.</summary>
    public double SendError { get; init; } = 0.01;

    /// <summary>An accept (single-shot or multishot) fails with ECONNABORTED, ENOMEM or EAGAIN instead of being submitted.</summary>
    public double AcceptError { get; init; } = 0.02;

    /// <summary>A send is submitted with a shorter length; a sendmsg with fewer iovecs or a shorter last one.</summary>
    public double ShortSend { get; init; } = 0.10;

    /// <summary>A single-shot buffer-select recv is submitted with a small maxLength.</summary>
    public double ShortRecv { get; init; } = 0.10;

    /// <summary>A real completion is held back and delivered by a later DrainCompletions.</summary>
    public double Delay { get; init; } = 0.05;

    /// <summary>A held completion comes back within this many DrainCompletions calls (at least the next one).</summary>
    public int MaxDelayDrains { get; init; } = 4;
}

/// <summary>What a <see cref="FaultInjectingRing"/> injected; the counters' indices.</summary>
internal enum InjectedFault
{
    RecvEnobufs,
    RecvEconnreset,
    RecvEnomem,
    SendEconnreset,
    SendEpipe,
    SendEnomem,
    AcceptEconnaborted,
    AcceptEnomem,
    AcceptEagain,
    /// <summary>Of the errors above: a multishot recv or accept ended by one mid-stream (not at its arming).</summary>
    MultishotEnded,
    ShortSend,
    ShortSendMsgFewerIovecs,
    ShortSendMsgLastIovec,
    ShortRecv,
    DelayedCompletion,
    DelayedBufferCompletion,
}

/// <summary>
/// A ring that injects faults the kernel could produce, chosen by a seeded <see cref="Random"/>
/// (one instance per loop: the seed combined with the loop index):
/// <list type="bullet">
/// <item>operations that fail with a real errno instead of being submitted: recvs (ENOBUFS, ECONNRESET,
/// ENOMEM), sends (ECONNRESET, EPIPE, ENOMEM), accepts (ECONNABORTED, ENOMEM, EAGAIN; for a
/// multishot accept this is its final completion). The failure's completion is synthesized (no
/// buffer, no More) and delivered by a later <see cref="DrainCompletions"/>, never inside the prepare;</item>
/// <item>multishot recvs and accepts that end with one of those errnos mid-stream: after one of its
/// completions, the ring cancels the operation in the kernel itself (its own user_data, whose
/// answer it swallows) and turns the -ECANCELED final into the errno. Every completion the
/// operation produced before it still arrives, as it was (an accepted fd, a filled buffer);</item>
/// <item>short sends: a shorter length, fewer iovecs, or a shorter last iovec;</item>
/// <item>short receives: a small maxLength on single-shot buffer-select receives (a multishot
/// receive cannot take one);</item>
/// <item>delayed completions: real completions held and delivered by a later drain, each user_data's
/// completions kept in order (once one is held, the later ones queue behind it). None is
/// dropped or duplicated, so each provided buffer comes back exactly once.</item>
/// </list>
/// CLOSE, cancels, NOP, READ, CONNECT, SHUTDOWN, POLL_ADD and SEND_ZC are forwarded as they are;
/// a cancel is forwarded even when its target's failure was synthesized (the kernel answers
/// ENOENT; the synthesized final still arrives, once). While it holds anything,
/// <see cref="SubmitAndWait"/> does not sleep, so nothing is held for long. After
/// <see cref="StopInjecting"/> nothing new is injected and the next drain delivers all it holds.
/// </summary>
/// <remarks>
/// Called on the loop thread only (as every ring), except <see cref="StopInjecting"/>,
/// <see cref="Held"/> and the counters, which are safe from any thread. The same seed gives the
/// same sequence of choices, but the choices land on whatever operations the run's timing puts
/// in front of them: a replay is likely, not certain, to reproduce a failure.
/// </remarks>
internal sealed unsafe class FaultInjectingRing : DecoratedRing
{
    /// <summary>user_data of this ring's own cancels: not the transport's layout (generation 0xFA17C0DE, kind 0xFF); their answers are swallowed.</summary>
    private const ulong OwnCancelUserData = 0xFA17_C0DE_FFFF_FFFFUL;

    private static readonly int[] s_recvErrors = [Errno.ENOBUFS, Errno.ECONNRESET, Errno.ENOMEM];
    private static readonly int[] s_plainRecvErrors = [Errno.ECONNRESET, Errno.ENOMEM]; // no ENOBUFS without buffer select
    private static readonly int[] s_sendErrors = [Errno.ECONNRESET, Errno.EPIPE, Errno.ENOMEM];
    private static readonly int[] s_acceptErrors = [Errno.ECONNABORTED, Errno.ENOMEM, Errno.EAGAIN];

    private readonly Random _random;
    private readonly FaultRates _rates;
    private readonly long[] _counts = new long[Enum.GetValues<InjectedFault>().Length];

    // Loop thread only: completions held back (synthesized or real), in the order they will be delivered.
    private readonly List<HeldCompletion> _held = new();
    private readonly Dictionary<ulong, int> _heldPerUserData = new();
    private readonly HashSet<ulong> _stuck = new(); // scratch for one release pass

    // Loop thread only: multishot ops armed in the kernel (by user_data), and those this ring is ending early.
    private readonly Dictionary<ulong, Multishot> _multishots = new();
    private readonly Dictionary<ulong, (int Errno, InjectedFault Kind)> _ending = new();
    private long _drains;
    private int _bufferSize;         // of the registered provided buffers: the bound of a short recv
    private volatile bool _injecting;
    private int _heldCount;          // _held.Count, for other threads
    private long _received, _synthesized, _delivered;

    /// <param name="injecting">False: forward everything until <see cref="StartInjecting"/>.</param>
    public FaultInjectingRing(IRing inner, int seed, int loopIndex, FaultRates? rates = null, bool injecting = true) : base(inner)
    {
        _injecting = injecting;
        Seed = seed;
        LoopIndex = loopIndex;
        _rates = rates ?? new FaultRates();
        _random = new Random(unchecked(seed * 1_000_003 + loopIndex));
    }

    /// <summary>The seed this ring's choices come from (with <see cref="LoopIndex"/>).</summary>
    public int Seed { get; }

    public int LoopIndex { get; }

    public bool Injecting => _injecting;

    /// <summary>Completions held now (synthesized failures not yet delivered, delayed real ones).</summary>
    public int Held => Volatile.Read(ref _heldCount);

    /// <summary>Stops injecting: nothing new fails, shrinks or waits; the next drain delivers everything held. Any thread.</summary>
    public void StopInjecting() => _injecting = false;

    /// <summary>Starts (or resumes) injecting. Any thread.</summary>
    public void StartInjecting() => _injecting = true;

    public long Count(InjectedFault fault) => Interlocked.Read(ref _counts[(int)fault]);

    /// <summary>Everything injected so far, by kind (kinds never injected left out).</summary>
    public IReadOnlyDictionary<InjectedFault, long> Counts() =>
        Enum.GetValues<InjectedFault>().Where(f => Count(f) > 0).ToDictionary(f => f, Count);

    private void Counted(InjectedFault fault) => Interlocked.Increment(ref _counts[(int)fault]);

    /// <summary>Completions the inner ring produced for the transport (this ring's own cancels' answers left out).</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Completions this ring made up (failed operations).</summary>
    public long Synthesized => Interlocked.Read(ref _synthesized);

    /// <summary>
    /// Completions handed to the transport. Once nothing is <see cref="Held"/>, exactly
    /// <see cref="Received"/> + <see cref="Synthesized"/>: none dropped, none duplicated.
    /// </summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    // ---- ring --------------------------------------------------------------------------------

    public override int RegisterBufferRing(ProvidedBufferRing buffers)
    {
        int r = base.RegisterBufferRing(buffers);
        if (r >= 0) _bufferSize = Math.Max(_bufferSize, buffers.BufferSize);
        return r;
    }

    public override int SubmitAndWait(int minComplete, int timeoutMs = -1) =>
        _held.Count > 0 ? Inner.SubmitAndWait(0, 0) : Inner.SubmitAndWait(minComplete, timeoutMs);

    public override int DrainCompletions(Span<Completion> destination)
    {
        _drains++;
        bool injecting = _injecting;
        int n = _held.Count > 0 ? ReleaseDue(destination, releaseAll: !injecting) : 0;
        if (n == destination.Length)
        {
            Interlocked.Add(ref _delivered, n);
            return n;
        }

        int got = Inner.DrainCompletions(destination.Slice(n));
        int end = n + got, kept = n;
        for (int i = n; i < end; i++)
        {
            Completion c = destination[i];
            if (c.UserData == OwnCancelUserData) continue; // the answer to this ring's own cancel: not the transport's
            Interlocked.Increment(ref _received);
            if (_multishots.Count > 0) c = Multishots(c, injecting);
            // Behind a held completion of the same operation: it must wait its turn.
            if (_heldPerUserData.ContainsKey(c.UserData))
            {
                Hold(c, _drains + 1);
            }
            else if (injecting && _random.NextDouble() < _rates.Delay)
            {
                Counted(c.HasBuffer ? InjectedFault.DelayedBufferCompletion : InjectedFault.DelayedCompletion);
                Hold(c, _drains + _random.Next(1, _rates.MaxDelayDrains + 1));
            }
            else
            {
                destination[kept++] = c;
            }
        }
        Interlocked.Add(ref _delivered, kept);
        return kept;
    }

    /// <summary>
    /// Tracks the multishot ops: after a completion flagged More, may end the op with an errno (a
    /// cancel of our own now, the errno in place of its -ECANCELED final); returns the completion
    /// to deliver, which is <paramref name="c"/> itself except for such a final.
    /// </summary>
    private Completion Multishots(Completion c, bool injecting)
    {
        ulong userData = c.UserData;
        if (!_multishots.TryGetValue(userData, out Multishot kind)) return c;
        if (!c.HasMore)
        {
            _multishots.Remove(userData);
            // Our cancel ended it (-ECANCELED); anything else means the op ended by itself first.
            if (_ending.Remove(userData, out var ending) && c.Result == -Errno.ECANCELED)
            {
                Counted(ending.Kind);
                Counted(InjectedFault.MultishotEnded);
                return new Completion(userData, -ending.Errno, c.Flags);
            }
            return c;
        }
        if (injecting && !_ending.ContainsKey(userData))
        {
            (double rate, int[] errors, InjectedFault first) = kind == Multishot.Recv
                ? (_rates.RecvError, s_recvErrors, InjectedFault.RecvEnobufs)
                : (_rates.AcceptError, s_acceptErrors, InjectedFault.AcceptEconnaborted);
            if (_random.NextDouble() < rate)
            {
                int pick = _random.Next(errors.Length);
                _ending[userData] = (errors[pick], first + pick);
                // Prepared now, before the transport handles this batch: it is submitted ahead of
                // anything the transport prepares next (a re-arm with the same user_data included).
                Inner.PrepareCancel(userData, OwnCancelUserData);
            }
        }
        return c;
    }

    /// <summary>Moves held completions that are due (all of them, once injection stopped) into <paramref name="destination"/>, in order.</summary>
    private int ReleaseDue(Span<Completion> destination, bool releaseAll)
    {
        int n = 0, kept = 0;
        _stuck.Clear();
        for (int i = 0; i < _held.Count; i++)
        {
            HeldCompletion h = _held[i];
            ulong userData = h.Completion.UserData;
            bool release = n < destination.Length && (releaseAll || h.DueAtDrain <= _drains) && !_stuck.Contains(userData);
            if (release)
            {
                destination[n++] = h.Completion;
                if (--_heldPerUserData[userData] == 0) _heldPerUserData.Remove(userData);
            }
            else
            {
                _stuck.Add(userData); // later completions of this user_data stay behind this one
                _held[kept++] = h;
            }
        }
        _held.RemoveRange(kept, _held.Count - kept);
        Volatile.Write(ref _heldCount, _held.Count);
        return n;
    }

    private void Hold(in Completion completion, long dueAtDrain)
    {
        _held.Add(new HeldCompletion(completion, dueAtDrain));
        _heldPerUserData[completion.UserData] = _heldPerUserData.GetValueOrDefault(completion.UserData) + 1;
        Volatile.Write(ref _heldCount, _held.Count);
    }

    /// <summary>
    /// With probability <paramref name="rate"/>, picks an errno from <paramref name="errors"/> and queues
    /// the operation's final completion with it (delivered by the next drain at the earliest);
    /// returns true when the operation must not be submitted.
    /// </summary>
    private bool Fail(double rate, int[] errors, InjectedFault firstKind, ulong userData)
    {
        if (!_injecting || _random.NextDouble() >= rate) return false;
        int pick = _random.Next(errors.Length);
        Counted(firstKind + pick);
        Interlocked.Increment(ref _synthesized);
        // A synthesized final: no buffer, no More. The kernel would answer an operation prepared
        // after it, of the same user_data, later: held completions of a user_data keep their order.
        Hold(new Completion(userData, -errors[pick], 0), _drains + 1);
        return true;
    }

    /// <summary>A length in [1, length): mostly tiny (a few bytes, to split headers), else anywhere.</summary>
    private int Shorter(int length) =>
        _random.Next(2) == 0 ? _random.Next(1, Math.Min(length, 17)) : _random.Next(1, length);

    // ---- receives ----------------------------------------------------------------------------

    public override void PrepareRecvBufferSelect(int fd, ushort bufferGroup, ulong userData, int maxLength = 0)
    {
        if (Fail(_rates.RecvError, s_recvErrors, InjectedFault.RecvEnobufs, userData)) return;
        int limit = maxLength > 0 ? maxLength : _bufferSize;
        if (_injecting && limit > 1 && _random.NextDouble() < _rates.ShortRecv)
        {
            Counted(InjectedFault.ShortRecv);
            maxLength = Shorter(limit);
        }
        base.PrepareRecvBufferSelect(fd, bufferGroup, userData, maxLength);
    }

    public override void PrepareRecvMultishot(int fd, ushort bufferGroup, ulong userData)
    {
        // Its final completion is the failure; a multishot recv takes no length (the kernel requires 0).
        if (Fail(_rates.RecvError, s_recvErrors, InjectedFault.RecvEnobufs, userData)) return;
        _multishots[userData] = Multishot.Recv;
        base.PrepareRecvMultishot(fd, bufferGroup, userData);
    }

    public override void PrepareRecv(int fd, byte* buffer, int length, ulong userData)
    {
        // A caller's buffer: ENOBUFS is a buffer-select answer, so only the other two.
        if (Fail(_rates.RecvError, s_plainRecvErrors, InjectedFault.RecvEconnreset, userData)) return;
        if (_injecting && length > 1 && _random.NextDouble() < _rates.ShortRecv)
        {
            Counted(InjectedFault.ShortRecv);
            length = Shorter(length);
        }
        base.PrepareRecv(fd, buffer, length, userData);
    }

    // ---- sends -------------------------------------------------------------------------------

    public override void PrepareSend(int fd, byte* buffer, int length, ulong userData)
    {
        if (Fail(_rates.SendError, s_sendErrors, InjectedFault.SendEconnreset, userData)) return;
        if (_injecting && length > 1 && _random.NextDouble() < _rates.ShortSend)
        {
            Counted(InjectedFault.ShortSend);
            length = Shorter(length);
        }
        base.PrepareSend(fd, buffer, length, userData);
    }

    public override void PrepareSendMsg(int fd, MsgHdr* message, ulong userData)
    {
        if (Fail(_rates.SendError, s_sendErrors, InjectedFault.SendEconnreset, userData)) return;
        // The transport fills the iovecs and the msghdr anew for every send, so shrinking them here
        // changes only this send, as a kernel that sent less would.
        int count = (int)message->IovLength;
        if (_injecting && count >= 1 && _random.NextDouble() < _rates.ShortSend)
        {
            int keep = _random.Next(1, count + 1);
            if (keep < count)
            {
                Counted(InjectedFault.ShortSendMsgFewerIovecs);
                message->IovLength = (nuint)keep;
            }
            else if (message->Iov[count - 1].Length > 1)
            {
                Counted(InjectedFault.ShortSendMsgLastIovec);
                message->Iov[count - 1].Length = (nuint)Shorter((int)Math.Min(message->Iov[count - 1].Length, int.MaxValue));
            }
        }
        base.PrepareSendMsg(fd, message, userData);
    }

    // ---- accepts -----------------------------------------------------------------------------

    public override void PrepareAccept(int fd, int flags, ulong userData)
    {
        if (Fail(_rates.AcceptError, s_acceptErrors, InjectedFault.AcceptEconnaborted, userData)) return;
        base.PrepareAccept(fd, flags, userData);
    }

    public override void PrepareAcceptMultishot(int fd, int flags, ulong userData)
    {
        // The failure is the multishot accept's final completion (no More): it accepted nothing.
        if (Fail(_rates.AcceptError, s_acceptErrors, InjectedFault.AcceptEconnaborted, userData)) return;
        _multishots[userData] = Multishot.Accept;
        base.PrepareAcceptMultishot(fd, flags, userData);
    }

    private readonly record struct HeldCompletion(Completion Completion, long DueAtDrain);

    private enum Multishot : byte
    {
        Recv,
        Accept,
    }
}

/// <summary>
/// The fault-injecting rings of one server (one per loop), made by <see cref="Decorate"/> through
/// the transport's DecorateRing hook: starts and stops them together and reports what they injected.
/// Rings it makes do not inject until <see cref="StartInjecting"/>.
/// </summary>
internal sealed class FaultInjection(int seed, FaultRates? rates = null)
{
    private readonly List<FaultInjectingRing> _rings = new();
    private volatile bool _injecting;

    public int Seed { get; } = seed;

    public FaultRates Rates { get; } = rates ?? new FaultRates();

    /// <summary>For <c>UringTransportOptions.DecorateRing</c>.</summary>
    public IRing Decorate(IRing ring, int loopIndex)
    {
        lock (_rings)
        {
            var decorated = new FaultInjectingRing(ring, Seed, loopIndex, Rates, _injecting);
            _rings.Add(decorated);
            return decorated;
        }
    }

    public IReadOnlyList<FaultInjectingRing> Rings
    {
        get { lock (_rings) return _rings.ToArray(); }
    }

    public void StartInjecting()
    {
        lock (_rings)
        {
            _injecting = true;
            foreach (FaultInjectingRing ring in _rings) ring.StartInjecting();
        }
    }

    public void StopInjecting()
    {
        lock (_rings)
        {
            _injecting = false;
            foreach (FaultInjectingRing ring in _rings) ring.StopInjecting();
        }
    }

    /// <summary>Completions the rings still hold.</summary>
    public int Held => Rings.Sum(r => r.Held);

    public long Total(InjectedFault fault) => Rings.Sum(r => r.Count(fault));

    /// <summary>Null when every ring handed the transport each completion exactly once (and holds none); else what is off.</summary>
    public string? Unbalanced()
    {
        var off = Rings.Where(r => r.Held != 0 || r.Delivered != r.Received + r.Synthesized)
            .Select(r => $"loop {r.LoopIndex}: delivered {r.Delivered}, received {r.Received} + synthesized {r.Synthesized}, held {r.Held}")
            .ToList();
        return off.Count == 0 ? null : string.Join("; ", off);
    }

    /// <summary>"seed N: RecvEnobufs 3, ..." over every loop, for assertion messages and the test's output.</summary>
    public string Describe()
    {
        var totals = Enum.GetValues<InjectedFault>().Select(f => (Fault: f, Count: Total(f))).Where(t => t.Count > 0);
        string counts = string.Join(", ", totals.Select(t => $"{t.Fault} {t.Count}"));
        return $"fault-injection seed {Seed} ({Rings.Count} loops): {(counts.Length == 0 ? "nothing injected" : counts)}";
    }
}
