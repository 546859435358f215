using System.Globalization;
using System.Text;

namespace Uring.Perf.Runner.Results;

/// <summary>report.md: machine facts, contenders, and one table per scenario.</summary>
internal static class MarkdownReport
{
    /// <summary>Background load on the server CPUs (measured in the idle pause before a run) above this is flagged.</summary>
    private const double NoisyBackgroundPercent = 10;

    public static string Render(RunsFile file)
    {
        var md = new StringBuilder();
        var m = file.Machine;
        var s = file.Settings;

        md.Append("# Uring.Transport benchmark");
        if (file.Quick)
        {
            md.Append(" (QUICK smoke run: not results)");
        }
        if (file.Interrupted)
        {
            md.Append(" (INTERRUPTED: partial)");
        }
        md.AppendLine().AppendLine();

        md.AppendLine("| | |");
        md.AppendLine("|---|---|");
        md.AppendLine($"| Date | {file.StartedUtc:yyyy-MM-dd HH:mm} UTC |");
        md.AppendLine($"| Kernel | {m.Kernel} |");
        md.AppendLine($"| CPU | {m.CpuModel}, {m.LogicalCpus} logical CPUs |");
        md.AppendLine($"| Pinning | servers on CPU {m.ServerCpus}, load generator on CPU {m.LoadCpus} (taskset); rings {m.Rings} (uring RingCount, sockets IOQueueCount) |");
        md.AppendLine($"| Load tools | {string.Join("; ", m.LoadTools)} |");
        md.AppendLine($"| Syscalls | {m.SyscallCounting} |");
        md.AppendLine($"| .NET | SDK {m.DotnetSdk}, runtime {m.DotnetRuntime}; server GC, Release |");
        md.AppendLine($"| Commit | {m.Commit} |");
        md.AppendLine($"| Method | {s.Runs} runs x {s.DurationSeconds} s per contender and scenario, contenders alternating run by run; warm-up {s.WarmupSeconds} s on each contender's first scenario, {s.ScenarioWarmupSeconds} s before each later one; {Num(s.PauseSeconds, "0.#")} s idle between runs. Figures are medians over the runs. |");
        md.AppendLine($"| Command | `./build.sh bench {string.Join(' ', s.CommandLine)}` |");
        md.AppendLine();
        md.AppendLine("> Where the load generator saturates its core (the \"load tool CPU\" column near 100 %), requests/s");
        md.AppendLine("> mostly measures the load generator, not the server: then **server CPU µs per request** is the");
        md.AppendLine("> figure that separates contenders. CPU µs/req is delta(utime+stime) of the server process over the");
        md.AppendLine("> run divided by the requests completed; syscalls/req counts `raw_syscalls:sys_enter` of the server");
        md.AppendLine("> process over the same window. \"load tool CPU\" is the load generator's own CPU time over the run");
        md.AppendLine("> (perf included), in % of its core(s).");
        md.AppendLine();

        var notes = new List<string>(file.Notes);
        double? noisiest = file.Runs.Max(r => r.OtherLoadBeforePercent);
        if (noisiest > NoisyBackgroundPercent)
        {
            notes.Insert(0, $"⚠ **The machine was not quiet:** other processes used up to {noisiest:0} % of the server CPU in the idle pause before a run " +
                "(see the notes column). Such runs measure the neighbours too; treat these figures as rough and rerun on a quiet machine.");
        }
        foreach (string note in notes)
        {
            md.AppendLine($"- {note}");
        }
        if (notes.Count > 0)
        {
            md.AppendLine();
        }

        md.AppendLine("## Contenders");
        md.AppendLine();
        md.AppendLine("| contender | app arguments | engine | status |");
        md.AppendLine("|---|---|---|---|");
        foreach (var c in file.Contenders)
        {
            string status = c.Started ? (c.Error is null ? $"ran (pid {c.Pid})" : $"⚠ {c.Error}") : $"⚠ did not start: {c.Error}";
            md.AppendLine($"| {c.Name} | `{string.Join(' ', c.AppArgs)}` | {Cell(c.EngineLine ?? c.Engine ?? "(Kestrel sockets)")} | {Cell(status)} |");
        }
        md.AppendLine();

        foreach (var scenario in file.Scenarios)
        {
            RenderScenario(md, file, scenario);
        }
        return md.ToString();
    }

    private static void RenderScenario(StringBuilder md, RunsFile file, ScenarioRecord scenario)
    {
        md.AppendLine($"## {scenario.Name}");
        md.AppendLine();
        md.AppendLine($"{scenario.Description}.{(scenario.Tool is null ? "" : $" Load tool: {scenario.Tool}.")}");
        if (scenario.TargetRps is double target)
        {
            md.AppendLine();
            md.AppendLine($"Offered rate: {Rps(target)} req/s target ({scenario.RateSource}); " +
                $"{scenario.Connections} connections" +
                (scenario.DelayMs is double d ? $", each pausing {Num(d, "0.###")} ms after every response." : ".") +
                " The req/s columns are the achieved rates.");
        }
        if (scenario.Note is not null)
        {
            md.AppendLine();
            md.AppendLine(scenario.Supported ? $"Note: {scenario.Note}" : $"**Not run:** {scenario.Note}");
        }
        md.AppendLine();
        if (!scenario.Supported)
        {
            return;
        }

        var rows = Summary.Of(file, scenario.Name);
        if (rows.Count == 0)
        {
            md.AppendLine("No runs.");
            md.AppendLine();
            return;
        }

        bool client = scenario.ClientSide;
        if (client)
        {
            md.AppendLine("| client handler | req/s median | min | max | req/s vs sockets | p50 | p99 | client CPU µs/req | client CPU/req vs sockets | notes |");
            md.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
        }
        else
        {
            md.AppendLine("| contender | req/s median | min | max | req/s vs sockets | p50 | p99 | CPU µs/req | CPU/req vs sockets | syscalls/req | load tool CPU | notes |");
            md.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
        }
        var footnotes = new List<string>();
        foreach (var r in rows)
        {
            var notes = new List<string>();
            if (r.RunsWithErrors > 0)
            {
                notes.Add($"⚠ errors in {r.RunsWithErrors}/{r.Runs} runs");
                var details = file.Runs
                    .Where(x => x.Scenario == scenario.Name && x.Contender == r.Contender && x.HasErrors)
                    .Select(x => $"run {x.Run}: {x.ErrorDetail}");
                footnotes.Add($"{r.Contender}: {string.Join("; ", details)}");
            }
            if (r.FailedRuns > 0)
            {
                notes.Add($"⚠ {r.FailedRuns}/{r.Runs} runs failed: {r.FirstFailure}");
            }
            var contender = client ? null : file.Contenders.FirstOrDefault(c => c.Name == r.Contender);
            if (contender?.Error is not null && contender.Started)
            {
                notes.Add($"⚠ {contender.Error}");
            }
            if (r.MaxOtherLoadBefore is double bg && bg > NoisyBackgroundPercent)
            {
                notes.Add($"⚠ other processes used up to {bg:0} % of the server CPU just before a run");
            }
            string common = $"| {r.Contender} | {Rps(r.MedianRps)} | {Rps(r.MinRps)} | {Rps(r.MaxRps)} | {Ratio(r.RpsRatio)} | " +
                $"{Latency(r.MedianP50Us)} | {Latency(r.MedianP99Us)} | {Num(r.MedianCpuUsPerRequest, "0.00")} | {Ratio(r.CpuRatio)} | ";
            md.AppendLine(client
                ? $"{common}{Cell(string.Join("; ", notes))} |"
                : $"{common}{Num(r.MedianSyscallsPerRequest, "0.00")} | {Percent(r.MedianLoadToolCpu)} | {Cell(string.Join("; ", notes))} |");
        }
        md.AppendLine();
        foreach (string f in footnotes)
        {
            md.AppendLine($"- {Cell(f)}");
        }
        if (footnotes.Count > 0)
        {
            md.AppendLine();
        }
    }

    public static string Rps(double? v) => v is double d ? d.ToString("#,0", CultureInfo.InvariantCulture) : "";

    public static string Num(double? v, string format) => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "";

    private static string Ratio(double? v) => v is double d ? d.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "";

    private static string Percent(double? v) => v is double d ? d.ToString("0", CultureInfo.InvariantCulture) + " %" : "";

    public static string Latency(double? us) => us switch
    {
        null => "",
        < 1000 => us.Value.ToString("0", CultureInfo.InvariantCulture) + " µs",
        < 1_000_000 => (us.Value / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        _ => (us.Value / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " s",
    };

    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).ReplaceLineEndings(" ");
}
