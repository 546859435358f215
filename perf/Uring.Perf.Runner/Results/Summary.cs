namespace Uring.Perf.Runner.Results;

/// <summary>The medians of one contender's runs in one scenario, and its ratios to the baseline.</summary>
internal sealed record ContenderSummary(
    string Contender,
    int Runs,
    int FailedRuns,
    double? MedianRps,
    double? MinRps,
    double? MaxRps,
    double? MedianP50Us,
    double? MedianP99Us,
    double? MedianCpuUsPerRequest,
    double? MedianSyscallsPerRequest,
    double? MedianLoadToolCpu,
    double? MaxOtherLoadBefore,
    long Non2xx,
    long SocketErrors,
    int RunsWithErrors,
    string? FirstFailure)
{
    /// <summary>Median RPS relative to the baseline's (higher is better).</summary>
    public double? RpsRatio { get; init; }

    /// <summary>Median CPU µs/request relative to the baseline's (lower is better).</summary>
    public double? CpuRatio { get; init; }

    /// <summary>The client scenario: the row is a client handler and the CPU figures are the client's own.</summary>
    public bool ClientSide { get; init; }
}

/// <summary>The io_uring engine against the epoll engine in one scenario: uring's medians divided by uring-epoll's.</summary>
internal sealed record EngineRatio(double? Rps, double? Cpu)
{
    public const string IoUring = "uring";
    public const string Epoll = "uring-epoll";
}

/// <summary>
/// One figure of a contender against its twin from the baseline build (--baseline-build), paired
/// run by run: for each run number both have, this build's figure over the baseline build's; then
/// the median of those ratios, how many were below 1, and the smallest and largest.
/// </summary>
internal sealed record PairedRatio(string Contender, string Figure, int Pairs, double Median, int BelowOne, double Min, double Max);

/// <summary>The medians of one contender's idle-scenario runs, and its ratio to the baseline.</summary>
internal sealed record IdleSummary(
    string Contender,
    int Runs,
    int FailedRuns,
    double? MedianConnections,
    double? MedianRssBeforeKiB,
    double? MedianRssAfterKiB,
    double? MedianKiBPerConnection,
    double? MinKiBPerConnection,
    double? MaxKiBPerConnection,
    double? MedianFdsAfter,
    double? MedianOpenSeconds,
    int RunsNotSettled,
    long Failures,
    string? FirstFailure,
    string? FirstError)
{
    /// <summary>Median growth per connection relative to the baseline's (lower is better).</summary>
    public double? Ratio { get; init; }

    /// <summary>Median total growth, MiB.</summary>
    public double? MedianGrowthMiB { get; init; }

    // After a full GC (runs.json format 3; null for older files and runs whose GC request failed).

    /// <summary>Growth per connection of the RSS read after a full GC: median, min, max, and the median's ratio to the baseline's.</summary>
    public double? MedianKiBPerConnectionAfterGc { get; init; }
    public double? MinKiBPerConnectionAfterGc { get; init; }
    public double? MaxKiBPerConnectionAfterGc { get; init; }
    public double? RatioAfterGc { get; init; }

    /// <summary>Median RSS (before opening, with the connections open) after a full GC.</summary>
    public double? MedianRssBeforeGcKiB { get; init; }
    public double? MedianRssAfterGcKiB { get; init; }

    /// <summary>Managed heap growth per connection (after the full GCs): median and its ratio to the baseline's.</summary>
    public double? MedianHeapKiBPerConnection { get; init; }
    public double? HeapRatio { get; init; }

    /// <summary>Good runs (an as-read figure) without an after-GC figure, and the first reason.</summary>
    public int RunsWithoutGc { get; init; }
    public string? FirstGcError { get; init; }

    /// <summary>Runs whose RSS had not settled after a GC.</summary>
    public int RunsNotSettledAfterGc { get; init; }
}

internal static class Summary
{
    /// <summary>
    /// One row per contender that has runs in the scenario, in contender order (then any other row
    /// names: the client scenario's handlers). In the client scenario the CPU figures are the client's.
    /// </summary>
    public static List<ContenderSummary> Of(RunsFile file, string scenario)
    {
        bool clientSide = file.Scenarios.FirstOrDefault(s => s.Name == scenario)?.ClientSide == true;
        var names = file.Contenders.Select(c => c.Name)
            .Concat(file.Runs.Where(r => r.Scenario == scenario).Select(r => r.Contender))
            .Distinct();
        var rows = new List<ContenderSummary>();
        foreach (string name in names)
        {
            var runs = file.Runs.Where(r => r.Scenario == scenario && r.Contender == name).ToList();
            if (runs.Count == 0)
            {
                continue;
            }
            var good = runs.Where(r => r.Failure is null && r.Requests > 0).ToList();
            rows.Add(new ContenderSummary(
                name,
                runs.Count,
                runs.Count - good.Count,
                Median(good.Select(r => (double?)r.Rps)),
                good.Count > 0 ? good.Min(r => r.Rps) : null,
                good.Count > 0 ? good.Max(r => r.Rps) : null,
                Median(good.Select(r => r.P50Us)),
                Median(good.Select(r => r.P99Us)),
                Median(good.Select(r => clientSide ? r.ClientCpuUsPerRequest : r.CpuUsPerRequest)),
                Median(good.Select(r => r.SyscallsPerRequest)),
                Median(good.Select(r => r.LoadToolCpuPercent)),
                runs.Max(r => r.OtherLoadBeforePercent),
                runs.Sum(r => r.Non2xx),
                runs.Sum(r => r.SocketErrors),
                runs.Count(r => r.HasErrors),
                runs.FirstOrDefault(r => r.Failure is not null)?.Failure)
            {
                ClientSide = clientSide,
            });
        }

        var baseline = rows.FirstOrDefault(r => r.Contender == Contender.Baseline);
        return [.. rows.Select(r => r with
        {
            RpsRatio = Ratio(r.MedianRps, baseline?.MedianRps),
            CpuRatio = Ratio(r.MedianCpuUsPerRequest, baseline?.MedianCpuUsPerRequest),
        })];
    }

    /// <summary>uring / uring-epoll for the rows of one scenario; null when either is missing.</summary>
    public static EngineRatio? Engines(IReadOnlyList<ContenderSummary> rows)
    {
        var uring = rows.FirstOrDefault(r => r.Contender == EngineRatio.IoUring);
        var epoll = rows.FirstOrDefault(r => r.Contender == EngineRatio.Epoll);
        if (uring is null || epoll is null)
        {
            return null;
        }
        var ratio = new EngineRatio(Ratio(uring.MedianRps, epoll.MedianRps), Ratio(uring.MedianCpuUsPerRequest, epoll.MedianCpuUsPerRequest));
        return ratio.Rps is null && ratio.Cpu is null ? null : ratio;
    }

    /// <summary>One row per contender with runs in the idle scenario, in contender order.</summary>
    public static List<IdleSummary> Idle(RunsFile file, string scenario)
    {
        var names = file.Contenders.Select(c => c.Name)
            .Concat(file.Runs.Where(r => r.Scenario == scenario).Select(r => r.Contender))
            .Distinct();
        var rows = new List<IdleSummary>();
        foreach (string name in names)
        {
            var runs = file.Runs.Where(r => r.Scenario == scenario && r.Contender == name).ToList();
            if (runs.Count == 0)
            {
                continue;
            }
            var good = runs.Where(r => r.Failure is null && r.RssKiBPerConnection is not null).ToList();
            var perConnection = good.Select(r => r.RssKiBPerConnection!.Value).ToList();
            rows.Add(new IdleSummary(
                name,
                runs.Count,
                runs.Count - good.Count,
                Median(good.Select(r => (double?)r.Requests)),
                Median(good.Select(r => (double?)r.RssBeforeKiB)),
                Median(good.Select(r => (double?)r.RssAfterKiB)),
                Median(perConnection.Select(v => (double?)v)),
                perConnection.Count > 0 ? perConnection.Min() : null,
                perConnection.Count > 0 ? perConnection.Max() : null,
                Median(good.Select(r => (double?)r.FdsAfter)),
                Median(good.Select(r => r.OpenSeconds)),
                good.Count(r => r.Settled == false),
                runs.Sum(r => r.SocketErrors),
                runs.FirstOrDefault(r => r.Failure is not null)?.Failure,
                runs.FirstOrDefault(r => r.ErrorDetail is not null)?.ErrorDetail)
            {
                MedianGrowthMiB = Median(good.Select(r => r.RssAfterKiB - r.RssBeforeKiB is long d ? d / 1024.0 : (double?)null)),
                MedianKiBPerConnectionAfterGc = Median(good.Select(r => r.RssKiBPerConnectionAfterGc)),
                MinKiBPerConnectionAfterGc = good.Min(r => r.RssKiBPerConnectionAfterGc),
                MaxKiBPerConnectionAfterGc = good.Max(r => r.RssKiBPerConnectionAfterGc),
                MedianRssBeforeGcKiB = Median(good.Where(r => r.RssKiBPerConnectionAfterGc is not null).Select(r => (double?)r.RssBeforeGcKiB)),
                MedianRssAfterGcKiB = Median(good.Where(r => r.RssKiBPerConnectionAfterGc is not null).Select(r => (double?)r.RssAfterGcKiB)),
                MedianHeapKiBPerConnection = Median(good.Select(r => r.HeapKiBPerConnection)),
                RunsWithoutGc = good.Count(r => r.RssKiBPerConnectionAfterGc is null),
                FirstGcError = good.FirstOrDefault(r => r.GcError is not null)?.GcError,
                RunsNotSettledAfterGc = good.Count(r => r.GcSettled == false),
            });
        }
        var baseline = rows.FirstOrDefault(r => r.Contender == Contender.Baseline);
        return [.. rows.Select(r => r with
        {
            Ratio = Ratio(r.MedianKiBPerConnection, baseline?.MedianKiBPerConnection),
            RatioAfterGc = Ratio(r.MedianKiBPerConnectionAfterGc, baseline?.MedianKiBPerConnectionAfterGc),
            HeapRatio = Ratio(r.MedianHeapKiBPerConnection, baseline?.MedianHeapKiBPerConnection),
        })];
    }

    /// <summary>Whether any row has an after-GC figure (runs.json format 3 with the GC request answered).</summary>
    public static bool HasAfterGc(IReadOnlyList<IdleSummary> rows) =>
        rows.Any(r => r.MedianKiBPerConnectionAfterGc is not null || r.MedianHeapKiBPerConnection is not null || r.FirstGcError is not null);

    /// <summary>uring / uring-epoll of the idle growth per connection; null when either is missing.</summary>
    public static double? IdleEngines(IReadOnlyList<IdleSummary> rows) =>
        Ratio(rows.FirstOrDefault(r => r.Contender == EngineRatio.IoUring)?.MedianKiBPerConnection,
              rows.FirstOrDefault(r => r.Contender == EngineRatio.Epoll)?.MedianKiBPerConnection);

    /// <summary>uring / uring-epoll of the growth per connection after a full GC; null when either is missing.</summary>
    public static double? IdleEnginesAfterGc(IReadOnlyList<IdleSummary> rows) =>
        Ratio(rows.FirstOrDefault(r => r.Contender == EngineRatio.IoUring)?.MedianKiBPerConnectionAfterGc,
              rows.FirstOrDefault(r => r.Contender == EngineRatio.Epoll)?.MedianKiBPerConnectionAfterGc);

    /// <summary>uring / uring-epoll of the managed heap growth per connection; null when either is missing.</summary>
    public static double? IdleEnginesHeap(IReadOnlyList<IdleSummary> rows) =>
        Ratio(rows.FirstOrDefault(r => r.Contender == EngineRatio.IoUring)?.MedianHeapKiBPerConnection,
              rows.FirstOrDefault(r => r.Contender == EngineRatio.Epoll)?.MedianHeapKiBPerConnection);

    /// <summary>
    /// Each contender with a @base twin in the scenario, against it, paired by run: CPU µs/req and
    /// req/s, or in the idle scenario KiB per connection (as read, and after a full GC).
    /// </summary>
    public static List<PairedRatio> Paired(RunsFile file, string scenario, bool idle)
    {
        (string Name, Func<RunRecord, double?> Value)[] figures = idle
            ? [("KiB/conn", r => r.RssKiBPerConnection), ("KiB/conn after a full GC", r => r.RssKiBPerConnectionAfterGc)]
            : [("CPU µs/req", r => r.CpuUsPerRequest), ("req/s", r => r.Rps)];
        var good = file.Runs.Where(r => r.Scenario == scenario && r.Failure is null && r.Requests > 0).ToList();
        var paired = new List<PairedRatio>();
        foreach (string twin in good.Select(r => r.Contender).Distinct())
        {
            if (Contender.CounterpartOf(twin) is not string name)
            {
                continue;
            }
            foreach (var (figure, value) in figures)
            {
                var ratios = good.Where(r => r.Contender == name)
                    .Join(good.Where(r => r.Contender == twin), r => r.Run, r => r.Run, (mine, theirs) => Ratio(value(mine), value(theirs)))
                    .OfType<double>()
                    .ToList();
                if (ratios.Count > 0)
                {
                    paired.Add(new PairedRatio(name, figure, ratios.Count, Median(ratios.Select(v => (double?)v))!.Value,
                        ratios.Count(v => v < 1), ratios.Min(), ratios.Max()));
                }
            }
        }
        return paired;
    }

    /// <summary>Median of the non-null values; null if there are none.</summary>
    public static double? Median(IEnumerable<double?> values)
    {
        var sorted = values.Where(v => v is not null).Select(v => v!.Value).Order().ToList();
        if (sorted.Count == 0)
        {
            return null;
        }
        int mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    public static double? Ratio(double? value, double? baseline) =>
        value is double v && baseline is double b && b > 0 ? v / b : null;
}
