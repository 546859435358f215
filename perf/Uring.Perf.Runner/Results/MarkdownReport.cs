using System.Globalization;
using System.Text;

namespace Uring.Perf.Runner.Results;

/// <summary>
/// report.md: machine facts, a summary table (ratios to sockets and uring / uring-epoll), the
/// contenders, and one table per scenario (the defaults pass's right after the pinned one; the
/// idle scenario's RSS table its own shape).
/// </summary>
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
        bool pinnedPass = s.Passes is null || s.Passes.Contains("pinned");
        bool defaultsPass = file.Scenarios.Any(x => x.Unpinned);
        if (pinnedPass)
        {
            md.AppendLine($"| Pinning | servers on CPU {m.ServerCpus}, load generator on CPU {m.LoadCpus} (taskset); rings {m.Rings} (uring RingCount, sockets IOQueueCount) |");
        }
        if (defaultsPass)
        {
            md.AppendLine($"| {Placement.DefaultsLabel} | the tables and rows so marked: nothing pinned (no taskset for the servers or the load generator), no --rings " +
                $"(the libraries' defaults: uring RingCount = CPU count, Sockets' own IOQueueCount), the load generator with {s.DefaultsLoadThreads?.ToString(CultureInfo.InvariantCulture) ?? "one"} thread(s) (one per CPU); " +
                "\"load tool CPU\" is then in % of all CPUs |");
        }
        md.AppendLine($"| Load tools | {string.Join("; ", m.LoadTools)} |");
        md.AppendLine($"| Syscalls | {m.SyscallCounting} |");
        md.AppendLine($"| .NET | SDK {m.DotnetSdk}, runtime {m.DotnetRuntime}; server GC, Release |");
        md.AppendLine($"| Commit | {m.Commit} |");
        if (s.BaselineBuild is not null)
        {
            md.AppendLine($"| Baseline build | {s.BaselineBuild}, commit {m.BaselineCommit}: the contenders named NAME{Contender.BaseSuffix} run its apps |");
        }
        md.AppendLine($"| Method | {s.Runs} runs x {s.DurationSeconds} s per contender and scenario, contenders alternating run by run in an order that changes each run (rotated and reversed, so that over 2 x contenders runs each is measured in every position equally often; a build and its @base twin side by side); warm-up {s.WarmupSeconds} s on each contender's first scenario, {s.ScenarioWarmupSeconds} s before each later one; {Num(s.PauseSeconds, "0.#")} s idle between runs. Figures are medians over the runs. |");
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

        var ordered = Ordered(file);
        RenderSummary(md, file, ordered);

        md.AppendLine("## Contenders");
        md.AppendLine();
        md.AppendLine("| contender | app arguments | engine | status |");
        md.AppendLine("|---|---|---|---|");
        foreach (var c in file.Contenders)
        {
            string limit = c.MaxOpenFiles is long n ? $", fd limit {(n == long.MaxValue ? "unlimited" : n.ToString(CultureInfo.InvariantCulture))}" : "";
            string status = c.Started ? (c.Error is null ? $"ran (pid {c.Pid}{limit})" : $"⚠ {c.Error}") : $"⚠ did not start: {c.Error}";
            string name = (c.App is null ? c.Name : $"{c.Name} ({c.App})") + (c.Unpinned ? $", {Placement.DefaultsLabel}" : "");
            if (c.LeftOutArgs is { Count: > 0 } leftOut)
            {
                status += $"; not passed, its build does not have them: `{string.Join(' ', leftOut)}`";
            }
            md.AppendLine($"| {name} | `{string.Join(' ', c.AppArgs)}` | {Cell(c.EngineLine ?? c.Engine ?? "(Kestrel sockets)")} | {Cell(status)} |");
        }
        if (file.Scenarios.Any(x => x.Idle))
        {
            md.AppendLine();
            md.AppendLine("The idle scenario starts fresh servers with the same arguments on ports of their own (their logs: idle-logs/).");
        }
        md.AppendLine();

        foreach (var scenario in ordered)
        {
            if (scenario.Idle)
            {
                RenderIdle(md, file, scenario);
            }
            else
            {
                RenderScenario(md, file, scenario);
            }
        }
        return md.ToString();
    }

    /// <summary>The scenario's name as the report shows it: "close-64" or "close-64, defaults (unpinned)".</summary>
    public static string Title(ScenarioRecord scenario) => scenario.Unpinned ? $"{BaseName(scenario)}, {Placement.DefaultsLabel}" : scenario.Name;

    /// <summary>The scenario's name without the defaults pass's suffix.</summary>
    public static string BaseName(ScenarioRecord scenario) =>
        scenario.Unpinned && scenario.Name.EndsWith(Placement.DefaultsSuffix, StringComparison.Ordinal)
            ? scenario.Name[..^Placement.DefaultsSuffix.Length]
            : scenario.Name;

    /// <summary>The scenarios in run order, each pinned one followed by its defaults-pass twin.</summary>
    public static List<ScenarioRecord> Ordered(RunsFile file)
    {
        var ordered = new List<ScenarioRecord>();
        foreach (var scenario in file.Scenarios.Where(x => !x.Unpinned))
        {
            ordered.Add(scenario);
            ordered.AddRange(file.Scenarios.Where(x => x.Unpinned && BaseName(x) == scenario.Name));
        }
        ordered.AddRange(file.Scenarios.Where(x => !ordered.Contains(x)));
        return ordered;
    }

    /// <summary>
    /// One row per scenario (and pass): every contender's median req/s and CPU µs/req, the ratios
    /// to sockets in brackets, and uring / uring-epoll; then the idle scenario's KiB per connection.
    /// </summary>
    private static void RenderSummary(StringBuilder md, RunsFile file, List<ScenarioRecord> ordered)
    {
        var load = ordered.Where(x => x.Supported && !x.Idle).Select(x => (Scenario: x, Rows: Summary.Of(file, x.Name))).Where(x => x.Rows.Count > 0).ToList();
        var idle = ordered.Where(x => x.Supported && x.Idle).Select(x => (Scenario: x, Rows: Summary.Idle(file, x.Name))).Where(x => x.Rows.Count > 0).ToList();
        if (load.Count == 0 && idle.Count == 0)
        {
            return;
        }
        md.AppendLine("## Summary");
        md.AppendLine();
        if (load.Count > 0)
        {
            var names = file.Contenders.Select(c => c.Name).Concat(load.SelectMany(x => x.Rows).Select(r => r.Contender)).Distinct()
                .Where(n => load.Any(x => x.Rows.Any(r => r.Contender == n))).ToList();
            bool engines = load.Any(x => Summary.Engines(x.Rows) is not null);
            md.Append("| scenario |");
            foreach (string n in names)
            {
                md.Append(n == Contender.Baseline ? $" {n} req/s |" : $" {n} |");
            }
            foreach (string n in names)
            {
                md.Append(n == Contender.Baseline ? $" {n} CPU µs/req |" : $" {n} |");
            }
            if (engines)
            {
                md.Append(" uring / uring-epoll req/s | uring / uring-epoll CPU/req |");
            }
            md.AppendLine();
            md.AppendLine("|---|" + string.Concat(Enumerable.Repeat("--:|", names.Count * 2 + (engines ? 2 : 0))));
            foreach (var (scenario, rows) in load)
            {
                md.Append($"| {Title(scenario)}{(scenario.ClientSide ? " (client's CPU)" : "")} |");
                foreach (string n in names)
                {
                    var r = rows.FirstOrDefault(x => x.Contender == n);
                    md.Append(r is null ? " |" : n == Contender.Baseline ? $" {Rps(r.MedianRps)} |" : $" {Rps(r.MedianRps)}{Bracket(r.RpsRatio)} |");
                }
                foreach (string n in names)
                {
                    var r = rows.FirstOrDefault(x => x.Contender == n);
                    md.Append(r is null ? " |" : n == Contender.Baseline ? $" {Num(r.MedianCpuUsPerRequest, "0.00")} |" : $" {Num(r.MedianCpuUsPerRequest, "0.00")}{Bracket(r.CpuRatio)} |");
                }
                if (engines)
                {
                    var e = Summary.Engines(rows);
                    md.Append($" {Ratio(e?.Rps)} | {Ratio(e?.Cpu)} |");
                }
                md.AppendLine();
            }
            md.AppendLine();
            md.AppendLine("Brackets: the ratio to sockets (req/s: higher is better; CPU µs/req: lower is better). " +
                "uring / uring-epoll: the io_uring engine's median divided by the epoll engine's.");
            md.AppendLine();
        }
        RenderPaired(md, file, ordered);
        if (idle.Count > 0)
        {
            // An idle-only run starts no long-lived contenders (file.Contenders is empty): the rows name them.
            var names = file.Contenders.Select(c => c.Name).Concat(idle.SelectMany(x => x.Rows).Select(r => r.Contender)).Distinct()
                .Where(n => idle.Any(x => x.Rows.Any(r => r.Contender == n))).ToList();
            md.AppendLine("| idle keep-alive memory | " + string.Join(" | ", names.Select(n => n == Contender.Baseline ? $"{n} KiB/conn" : n)) + " | uring / uring-epoll |");
            md.AppendLine("|---|" + string.Concat(Enumerable.Repeat("--:|", names.Count + 1)));
            bool anyAfterGc = false;
            foreach (var (scenario, rows) in idle)
            {
                md.Append($"| {Title(scenario)} |");
                foreach (string n in names)
                {
                    var r = rows.FirstOrDefault(x => x.Contender == n);
                    md.Append(r is null ? " |" : n == Contender.Baseline ? $" {Num(r.MedianKiBPerConnection, "0.0")} |" : $" {Num(r.MedianKiBPerConnection, "0.0")}{Bracket(r.Ratio)} |");
                }
                md.AppendLine($" {Ratio(Summary.IdleEngines(rows))} |");
                if (Summary.HasAfterGc(rows))
                {
                    anyAfterGc = true;
                    md.Append($"| {Title(scenario)}, after a full GC |");
                    foreach (string n in names)
                    {
                        var r = rows.FirstOrDefault(x => x.Contender == n);
                        md.Append(r is null ? " |" : n == Contender.Baseline ? $" {Num(r.MedianKiBPerConnectionAfterGc, "0.0")} |" : $" {Num(r.MedianKiBPerConnectionAfterGc, "0.0")}{Bracket(r.RatioAfterGc)} |");
                    }
                    md.AppendLine($" {Ratio(Summary.IdleEnginesAfterGc(rows))} |");
                }
            }
            md.AppendLine();
            if (anyAfterGc)
            {
                md.AppendLine("KiB of server RSS per idle connection (brackets: the ratio to sockets; lower is better): as read once the RSS settled, " +
                    "and (\"after a full GC\") read again after the server ran a full compacting, aggressive GC, which leaves out most of the GC's timing noise.");
                md.AppendLine();
            }
        }
    }

    /// <summary>This build against the baseline build: every scenario's paired ratios (<see cref="Summary.Paired"/>), one row per figure.</summary>
    private static void RenderPaired(StringBuilder md, RunsFile file, List<ScenarioRecord> ordered)
    {
        var scenarios = ordered.Where(x => x.Supported).Select(x => (Scenario: x, Ratios: Summary.Paired(file, x.Name, x.Idle))).Where(x => x.Ratios.Count > 0).ToList();
        if (scenarios.Count == 0)
        {
            return;
        }
        md.AppendLine($"This build ({file.Machine.Commit}) against the baseline build ({file.Machine.BaselineCommit}, the contenders NAME{Contender.BaseSuffix}), paired by run:");
        md.AppendLine();
        md.AppendLine("| scenario | contender | figure | new / base, median | runs below 1 | min | max |");
        md.AppendLine("|---|---|---|--:|--:|--:|--:|");
        foreach (var (scenario, ratios) in scenarios)
        {
            foreach (var p in ratios)
            {
                md.AppendLine($"| {Title(scenario)} | {p.Contender} | {p.Figure} | {Ratio(p.Median)} | {p.BelowOne} of {p.Pairs} | {Ratio(p.Min)} | {Ratio(p.Max)} |");
            }
        }
        md.AppendLine();
        md.AppendLine("For each run i, the contender's figure over its @base twin's in the same run i (the two measured one after the other); " +
            "the median of those ratios, how many were below 1, and the smallest and largest. Below 1: this build spends less CPU or memory, or serves fewer req/s, than the baseline build.");
        md.AppendLine();
    }

    /// <summary>A scenario section's line of paired ratios against the baseline build; null without a @base twin.</summary>
    private static string? PairedLine(RunsFile file, ScenarioRecord scenario)
    {
        var ratios = Summary.Paired(file, scenario.Name, scenario.Idle);
        return ratios.Count == 0 ? null : "This build / the baseline build, paired by run: " + string.Join("; ", ratios.Select(p =>
            $"{p.Contender} {p.Figure} {Ratio(p.Median)} ({p.BelowOne} of {p.Pairs} runs below 1, {Ratio(p.Min)} to {Ratio(p.Max)})")) + ".";
    }

    /// <summary>The idle scenario's table: RSS before and after, growth per connection, its ratios.</summary>
    private static void RenderIdle(StringBuilder md, RunsFile file, ScenarioRecord scenario)
    {
        md.AppendLine($"## {Title(scenario)}");
        md.AppendLine();
        md.AppendLine($"{scenario.Description}.");
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
        var rows = Summary.Idle(file, scenario.Name);
        if (rows.Count == 0)
        {
            md.AppendLine("No runs.");
            md.AppendLine();
            return;
        }
        bool gc = Summary.HasAfterGc(rows);
        md.AppendLine("| contender | connections | RSS before | RSS with them open | growth | KiB per connection, median | min | max | vs sockets | " +
            (gc ? "RSS after a full GC, before → open | KiB per connection after a full GC, median | after-GC min | after-GC max | after-GC vs sockets | managed heap KiB per connection, median | heap vs sockets | " : "") +
            "server fds open | opened in | notes |");
        md.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|--:|" + (gc ? "--:|--:|--:|--:|--:|--:|--:|" : "") + "--:|--:|---|");
        foreach (var r in rows)
        {
            var notes = new List<string>();
            if (r.FailedRuns > 0)
            {
                notes.Add($"⚠ {r.FailedRuns}/{r.Runs} runs failed: {r.FirstFailure}");
            }
            if (r.Failures > 0)
            {
                notes.Add($"⚠ {r.Failures} connections failed in all: {r.FirstError}");
            }
            if (r.RunsNotSettled > 0)
            {
                notes.Add($"⚠ the RSS had not settled (within 1 % over 1 s) in {r.RunsNotSettled} run(s): the last read counts");
            }
            if (gc && r.RunsWithoutGc > 0)
            {
                notes.Add($"⚠ no after-GC figure in {r.RunsWithoutGc} run(s): {r.FirstGcError ?? "not measured"}");
            }
            if (gc && r.RunsNotSettledAfterGc > 0)
            {
                notes.Add($"⚠ the RSS had not settled after a GC in {r.RunsNotSettledAfterGc} run(s): the last read counts");
            }
            string afterGc = !gc ? "" :
                $"{(r.MedianRssBeforeGcKiB is null ? "" : $"{MiB(r.MedianRssBeforeGcKiB)} → {MiB(r.MedianRssAfterGcKiB)}")} | " +
                $"{Num(r.MedianKiBPerConnectionAfterGc, "0.00")} | {Num(r.MinKiBPerConnectionAfterGc, "0.00")} | {Num(r.MaxKiBPerConnectionAfterGc, "0.00")} | {Ratio(r.RatioAfterGc)} | " +
                $"{Num(r.MedianHeapKiBPerConnection, "0.00")} | {Ratio(r.HeapRatio)} | ";
            md.AppendLine($"| {r.Contender} | {Rps(r.MedianConnections)} | {MiB(r.MedianRssBeforeKiB)} | {MiB(r.MedianRssAfterKiB)} | " +
                $"{Num(r.MedianGrowthMiB, "0.0")} MiB | {Num(r.MedianKiBPerConnection, "0.00")} | {Num(r.MinKiBPerConnection, "0.00")} | {Num(r.MaxKiBPerConnection, "0.00")} | " +
                $"{Ratio(r.Ratio)} | {afterGc}{Rps(r.MedianFdsAfter)} | {(r.MedianOpenSeconds is double o ? Num(o, "0.0") + " s" : "")} | {Cell(string.Join("; ", notes))} |");
        }
        md.AppendLine();
        var engineParts = new List<string>();
        if (Summary.IdleEngines(rows) is double engines)
        {
            engineParts.Add($"{Ratio(engines)} the RSS per idle connection");
        }
        if (gc && Summary.IdleEnginesAfterGc(rows) is double enginesAfterGc)
        {
            engineParts.Add($"{Ratio(enginesAfterGc)} after a full GC");
        }
        if (gc && Summary.IdleEnginesHeap(rows) is double enginesHeap)
        {
            engineParts.Add($"{Ratio(enginesHeap)} the managed heap per connection");
        }
        if (engineParts.Count > 0)
        {
            md.AppendLine($"uring / uring-epoll: {string.Join("; ", engineParts)}.");
            md.AppendLine();
        }
        if (PairedLine(file, scenario) is string paired)
        {
            md.AppendLine(paired);
            md.AppendLine();
        }
    }

    private static string MiB(double? kib) => kib is double k ? (k / 1024).ToString("0.0", CultureInfo.InvariantCulture) + " MiB" : "";

    private static string Bracket(double? ratio) => ratio is double r ? $" ({Ratio(r)})" : "";

    private static void RenderScenario(StringBuilder md, RunsFile file, ScenarioRecord scenario)
    {
        md.AppendLine($"## {Title(scenario)}");
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
            var contender = client ? null : file.Contenders.FirstOrDefault(c => c.Name == r.Contender && c.Unpinned == scenario.Unpinned);
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
        var extra = new List<string>();
        if (!client && Summary.Engines(rows) is EngineRatio e)
        {
            extra.Add($"uring / uring-epoll: req/s {Ratio(e.Rps)}, CPU µs/req {Ratio(e.Cpu)}.");
        }
        if (PairedLine(file, scenario) is string paired)
        {
            extra.Add(paired);
        }
        if (scenario.PayloadBytes is long bytes && bytes > 0)
        {
            var rates = rows.Where(r => r.MedianRps is not null)
                .Select(r => $"{r.Contender} {(r.MedianRps!.Value * bytes / (1 << 20)).ToString("#,0", CultureInfo.InvariantCulture)} MiB/s");
            extra.Add($"Body throughput ({bytes.ToString("#,0", CultureInfo.InvariantCulture)} bytes per request): {string.Join(", ", rates)}.");
        }
        foreach (string line in extra)
        {
            md.AppendLine(line);
            md.AppendLine();
        }
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
