using System.Globalization;
using System.Text;

namespace Uring.Soak;

/// <summary>A counter the soak watches, and how much it may grow.</summary>
/// <param name="Slack">What the last window's median may exceed 1.5 x the first window's median by.</param>
internal sealed record Watched(string Name, string Unit, long Divisor, long Slack, Func<Sample, long> Read);

/// <summary>
/// Judges one engine's run. A counter "grows without bound" when the median of the last window is
/// above 1.5 x the median of the first window plus the counter's slack. The first window starts
/// after a warm-up of min(10 s, 15% of the run) (JIT, pool growth, thread injection); both windows
/// last min(60 s, a third of what follows the warm-up): for a 10-minute run, the first minute
/// after warm-up against the last minute. After the load stops the server must drain: within 15 s
/// no connection but the sampler's, no provided buffer out of its ring, at most 64 KiB rented
/// from the pool, and no more sockets open than when idle (other fds may stay: the runtime keeps
/// each assembly it loaded open).
/// </summary>
internal sealed class Verdict
{
    public static readonly Watched[] Counters =
    [
        new("RSS", "MiB", 1 << 20, 64L << 20, s => s.RssBytes),
        new("open fds", "", 1, 64, s => s.OpenFds),
        new("open sockets", "", 1, 64, s => s.Sockets),
        new("pool rented", "KiB", 1 << 10, 8L << 20, s => s.PoolRented),
        new("pool allocated", "KiB", 1 << 10, 16L << 20, s => s.PoolAllocated),
        new("loop queue length", "", 1, 256, s => s.QueueLength),
        new("connections", "", 1, 64, s => s.Connections),
        new("provided buffers in use", "", 1, 256, s => s.BuffersInUse),
    ];

    public const long DrainedPoolRented = 64 * 1024;

    public static bool IsDrained(Sample idle, Sample now) =>
        now.Connections <= 1 && now.BuffersInUse == 0 && now.PoolRented <= DrainedPoolRented && now.Sockets <= idle.Sockets;

    public List<string> Failures { get; } = new();

    public string Report { get; private set; } = "";

    public static Verdict Judge(string name, string engineLine, TimeSpan duration, int workers, Workload load, Sample idle,
        IReadOnlyList<Sample> samples, int missedSamples, Sample? drained, IReadOnlyList<string> serverProblems, int? exitCode)
    {
        var verdict = new Verdict();
        var report = new StringBuilder();
        double total = duration.TotalSeconds;
        double warmUp = Math.Min(10, total * 0.15);
        double window = Math.Min(60, (total - warmUp) / 3);
        Sample[] first = samples.Where(s => s.Seconds >= warmUp && s.Seconds < warmUp + window).ToArray();
        Sample[] last = samples.Where(s => s.Seconds > total - window).ToArray();

        report.AppendLine($"== soak {name}: {total:F0} s, {workers} workers ==");
        report.AppendLine(engineLine.Trim());
        report.AppendLine();
        report.AppendLine($"{"scenario",-12} {"runs",8} {"requests",10} {"MiB verified",13} {"failures",9}");
        foreach ((Scenario scenario, ScenarioStats s) in load.Stats)
            report.AppendLine($"{scenario,-12} {s.Runs,8} {s.Requests,10} {s.BytesVerified / 1048576.0,13:F1} {s.Failures,9}");
        report.AppendLine();
        report.AppendLine($"idle: before the load; first/last: medians of the windows {warmUp:F0}-{warmUp + window:F0} s ({first.Length} samples) and " +
            $"{total - window:F0}-{total:F0} s ({last.Length} samples); end: the last sample under load; drained: after it; limit: 1.5 x first + slack");
        report.AppendLine($"{"counter",-24} {"idle",9} {"first",9} {"last",9} {"max",9} {"end",9} {"drained",9} {"limit",9}  ok");
        foreach (Watched c in Counters)
        {
            long firstMedian = Median(first, c.Read), lastMedian = Median(last, c.Read);
            long limit = firstMedian * 3 / 2 + c.Slack;
            bool ok = first.Length == 0 || last.Length == 0 || lastMedian <= limit;
            if (!ok) verdict.Failures.Add($"{c.Name} grew: last-window median {Show(c, lastMedian)} > limit {Show(c, limit)} (first-window median {Show(c, firstMedian)})");
            string label = c.Unit.Length == 0 ? c.Name : $"{c.Name} ({c.Unit})";
            report.AppendLine($"{label,-24} {Show(c, c.Read(idle)),9} {Show(c, firstMedian),9} {Show(c, lastMedian),9} " +
                $"{Show(c, samples.Count == 0 ? 0 : samples.Max(c.Read)),9} {(samples.Count == 0 ? "-" : Show(c, c.Read(samples[^1]))),9} " +
                $"{(drained is null ? "-" : Show(c, c.Read(drained))),9} {Show(c, limit),9}  {(ok ? "yes" : "NO")}");
        }

        if (first.Length == 0 || last.Length == 0) verdict.Failures.Add("too few samples to compare the first and last windows");
        if (missedSamples > Math.Max(3, samples.Count / 20)) verdict.Failures.Add($"{missedSamples} samples missed: GET /diag went unanswered");
        if (load.TotalFailures > 0) verdict.Failures.Add($"{load.TotalFailures} wrong or missing answers: {string.Join("; ", load.FailureSamples.Take(5))}");
        if (load.TotalRequests == 0) verdict.Failures.Add("no request was answered");
        if (drained is null || !IsDrained(idle, drained))
            verdict.Failures.Add($"the server did not drain within 15 s of the load's end ({Describe(drained)}; idle sockets {idle.Sockets})");
        if (serverProblems.Count > 0) verdict.Failures.Add($"the server logged {serverProblems.Count} error(s): {string.Join(" | ", serverProblems.Take(5))}");
        if (exitCode != 0) verdict.Failures.Add(exitCode is null ? "the server did not exit within 30 s of SIGTERM" : $"the server exited with {exitCode} after SIGTERM");

        report.AppendLine();
        report.AppendLine(verdict.Failures.Count == 0 ? $"{name}: PASS" : $"{name}: FAIL");
        foreach (string failure in verdict.Failures) report.AppendLine("  - " + failure);
        verdict.Report = report.ToString();
        return verdict;
    }

    public static string Describe(Sample? s) => s is null ? "no sample" :
        $"connections {s.Connections}, provided buffers in use {s.BuffersInUse}, pool rented {s.PoolRented / 1024} KiB, fds {s.OpenFds} ({s.Sockets} sockets), RSS {s.RssBytes >> 20} MiB";

    private static long Median(Sample[] samples, Func<Sample, long> read)
    {
        if (samples.Length == 0) return 0;
        long[] values = samples.Select(read).Order().ToArray();
        return values[values.Length / 2];
    }

    private static string Show(Watched c, long value) =>
        c.Divisor == 1 ? value.ToString(CultureInfo.InvariantCulture) : (value / (double)c.Divisor).ToString("F1", CultureInfo.InvariantCulture);
}
