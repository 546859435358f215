using System.Diagnostics;
using System.Text;

namespace Uring.Native.Tests;

/// <summary>Which ring a test runs on (the transport's engines, without its Auto).</summary>
public enum RingKind
{
    IoUring,
    Epoll,
}

/// <summary>
/// Owns one enabled ring for a test and pumps it: every completion drained is kept in
/// <see cref="Seen"/>, in order, so a failure can print exactly what the ring produced.
/// </summary>
/// <remarks>
/// The ring is enabled on the constructing thread (SINGLE_ISSUER / DEFER_TASKRUN): keep every
/// call on that thread, so test methods using it stay synchronous.
/// </remarks>
internal sealed class RingDriver : IDisposable
{
    public const int DefaultTimeoutMs = 10_000;

    private readonly Completion[] _batch = new Completion[128];

    private RingDriver(IRing ring) => Ring = ring;

    public IRing Ring { get; }

    public List<Completion> Seen { get; } = new();

    /// <summary>Creates the ring for <paramref name="engine"/>, with the features the test kernel allows, and enables it on this thread.</summary>
    public static RingDriver Create(RingKind engine, int entries = 64)
    {
        IRing ring = engine == RingKind.IoUring ? IoUringRing.Create(entries, TestKernel.Limit) : new EpollRing(entries, TestKernel.Limit);
        try
        {
            ring.Enable();
            return new RingDriver(ring);
        }
        catch
        {
            ring.Dispose();
            throw;
        }
    }

    /// <summary>One SubmitAndWait(1, timeout) and a full drain; returns how many completions arrived.</summary>
    public int PumpOnce(int timeoutMs = 100, Action<Completion>? onEach = null)
    {
        int submitted = Ring.SubmitAndWait(1, timeoutMs);
        if (submitted < 0 && submitted != -Errno.ETIME && submitted != -Errno.EINTR)
            Assert.Fail($"SubmitAndWait returned {Errno.Describe(submitted)} on {Ring.Description}. {History()}");
        return Drain(onEach);
    }

    /// <summary>Drains without waiting; returns how many completions arrived.</summary>
    public int Drain(Action<Completion>? onEach = null)
    {
        int total = 0, n;
        while ((n = Ring.DrainCompletions(_batch)) > 0)
        {
            for (int i = 0; i < n; i++)
            {
                Seen.Add(_batch[i]);
                onEach?.Invoke(_batch[i]);
            }
            total += n;
        }
        return total;
    }

    /// <summary>Pumps until <paramref name="done"/> holds; fails with the completions seen after the deadline.</summary>
    public void PumpUntil(Func<bool> done, string what, Action<Completion>? onEach = null, int timeoutMs = DefaultTimeoutMs)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.ElapsedMilliseconds > timeoutMs)
                Assert.Fail($"Timed out after {timeoutMs} ms on {Ring.Description} waiting for {what}. {History()}");
            PumpOnce(100, onEach);
        }
    }

    /// <summary>Keeps pumping for <paramref name="milliseconds"/>, whatever arrives.</summary>
    public void PumpFor(int milliseconds, Action<Completion>? onEach = null)
    {
        var clock = Stopwatch.StartNew();
        while (clock.ElapsedMilliseconds < milliseconds)
            PumpOnce((int)Math.Clamp(milliseconds - clock.ElapsedMilliseconds, 1, 50), onEach);
    }

    /// <summary>Pumps until a completion for <paramref name="userData"/> has arrived and returns the first one.</summary>
    public Completion WaitFor(ulong userData, string what, int timeoutMs = DefaultTimeoutMs)
    {
        PumpUntil(() => Count(userData) > 0, what, timeoutMs: timeoutMs);
        return For(userData)[0];
    }

    /// <summary>Pumps until a completion for each of <paramref name="userData"/> has arrived.</summary>
    public void WaitForAll(string what, params ulong[] userData) =>
        PumpUntil(() => userData.All(u => Count(u) > 0), what);

    public List<Completion> For(ulong userData) => Seen.Where(c => c.UserData == userData).ToList();

    public int Count(ulong userData) => Seen.Count(c => c.UserData == userData);

    /// <summary>The single completion for <paramref name="userData"/>; fails if there were none or several.</summary>
    public Completion Single(ulong userData)
    {
        var all = For(userData);
        Assert.True(all.Count == 1, $"Expected exactly one completion for 0x{userData:x} on {Ring.Description}, saw {all.Count}. {History()}");
        return all[0];
    }

    /// <summary>"Completions seen (n): ..." with the last 64, errno names spelled out.</summary>
    public string History(int last = 64)
    {
        var text = new StringBuilder($"Completions seen ({Seen.Count}):");
        if (Seen.Count > last) text.Append(" ... ");
        foreach (var c in Seen.Skip(Math.Max(0, Seen.Count - last)))
            text.Append("\n  ").Append(Describe(c));
        return text.ToString();
    }

    public static string Describe(Completion c)
    {
        bool notification = (c.Flags & CompletionFlags.Notification) != 0;
        // A zero-copy notification's res holds flags (IORING_NOTIF_USAGE_ZC_COPIED is bit 31), not an errno.
        var text = new StringBuilder(notification ? $"user_data=0x{c.UserData:x} res=0x{c.Result:x}" : $"user_data=0x{c.UserData:x} res={c.Result}");
        if (c.Result < 0 && !notification) text.Append(" (").Append(Errno.Name(c.Result)).Append(')');
        text.Append($" flags=0x{c.Flags:x}");
        if (c.HasMore) text.Append(" MORE");
        if (c.HasBuffer) text.Append($" BUFFER(bid={c.BufferId})");
        if (notification) text.Append(" NOTIF");
        if ((c.Flags & CompletionFlags.SockNonEmpty) != 0) text.Append(" SOCK_NONEMPTY");
        return text.ToString();
    }

    public void Dispose() => Ring.Dispose();
}
