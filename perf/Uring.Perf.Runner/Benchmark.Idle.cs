using System.Globalization;
using Uring.Perf.Runner.Load;
using Uring.Perf.Runner.Measure;
using Uring.Perf.Runner.Processes;
using Uring.Perf.Runner.Results;

namespace Uring.Perf.Runner;

// The idle scenario: the server's memory per idle keep-alive connection.
internal sealed partial class Benchmark
{
    /// <summary>Load on each fresh server before its RSS is read: JIT, pools, the request path.</summary>
    private const int IdleWarmupSeconds = 2;

    /// <summary>Connections being opened at once (Kestrel's listen backlog is 512).</summary>
    private const int IdleParallelOpens = 128;

    /// <summary>The RSS has settled when two reads 1 s apart differ by at most this much.</summary>
    private const double RssTolerance = 0.01;

    /// <summary>At most this long for the RSS to settle (then the last read counts, flagged).</summary>
    private const int MaxSettleSeconds = 20;

    /// <summary>At most this long for the server to let go of the closed connections' fds.</summary>
    private const int MaxCloseSeconds = 15;

    /// <summary>Per contender and run: start the server, warm it, settle, GC and settle, open, settle, GC and settle, close.</summary>
    private const double IdleRunSeconds = 1.5 + IdleWarmupSeconds + 1 + 1 + 1 + 1 + 1 + 0.5; // ~8.3 s measured on 2 cores (10,000 connections)

    private int IdleConnectionCount => options.IdleConnections;

    private double IdlePlannedSeconds() => options.Runs * options.Contenders.Count * (IdleRunSeconds + options.PauseSeconds);

    /// <summary>
    /// For each run, each contender in turn (alternating, in the load scenarios' changing order): a
    /// fresh server (pinned or not as the pass says, fd limit raised), a short plaintext warm-up
    /// load, the RSS once settled; then <see cref="IdleConnectionCount"/> keep-alive connections from this
    /// process, one request each, left idle; the RSS once settled; then they are closed and the
    /// server is stopped. Every step is bounded; nothing here waits for the server without a limit.
    /// </summary>
    private void RunIdleScenario(Scenario scenario, ScenarioRecord record, ILoadTool warmupTool)
    {
        int count = IdleConnectionCount;
        record.Connections = count;
        long? ownLimit = FileLimit.RaiseOwn(FileLimit.Wanted);
        if (ownLimit is long limit && limit < count + 100)
        {
            NotRun(record, $"the runner may open only {limit} files (RLIMIT_NOFILE, hard limit included), too few for {count} connections: lower --idle-connections or raise the hard limit");
            return;
        }
        string? dotnet = ChildProcesses.Which("dotnet");
        if (dotnet is null)
        {
            NotRun(record, "dotnet is not on PATH");
            return;
        }
        record.Supported = true;
        record.Tool = $"the runner's own sockets (warm-up: {warmupTool.Name} ({warmupTool.Version}))";
        string pinning = _place.ServerCpus is null ? "not pinned" : $"taskset -c {_place.ServerCpus}";
        string rings = _place.Rings is int r ? $"--rings {r}" : "no --rings";
        record.Note = $"A fresh server per contender and run ({pinning}, {rings}, started under `ulimit -n {FileLimit.Wanted}`), " +
            $"warmed up with {IdleWarmupSeconds} s of {warmupTool.Name} GET /plaintext over 64 connections, then left to settle. " +
            $"The connections are opened from the runner process ({IdleParallelOpens} at a time; runner RLIMIT_NOFILE {ownLimit?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}), " +
            "each sends one request and reads its response, then stays open; they are closed (FIN) after the second RSS read. " +
            "**KiB per connection** is the RSS growth as read (settled), so it includes however much of the GC's gen0 budget happens to be committed at each read " +
            "(about ±1 KiB per connection from one run or build to the next). " +
            $"**After a full GC**: right after each of those two reads the runner sends one POST /gc on an extra connection of its own (the servers run with `{ServerLaunch.GcEndpointArg}`): " +
            "the app runs `GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true)`, the pending finalizers, and that GC again " +
            "(aggressive mode decommits what it can), and answers GC.GetTotalMemory(false); the RSS is then read once settled again, and the after-GC figure is " +
            "the growth of those reads per connection: the memory the connections keep, with far less GC noise. " +
            "**Managed heap KiB per connection** is the growth of the heap size the app answered, per connection: the managed part of it " +
            "(pinned buffers on the POH included; native memory, thread stacks and mapped rings are only in the RSS figures). " +
            "The GC before opening also compacts the heap the connections then grow from, so the as-read figure is not strictly comparable with runs that had no GC.";
        var plaintext = Scenario.Find(Scenario.RateReference)!;
        string logDir = Path.Combine(runDir, "idle-logs");
        Directory.CreateDirectory(logDir);

        Say("");
        Say($"==> {record.Name}: {count:#,0} idle keep-alive connections per server; {options.Contenders.Count} contenders x {options.Runs} runs, a fresh server each");

        for (int run = 1; run <= options.Runs; run++)
        {
            foreach (var contender in InRunOrder(options.Contenders, run, c => c.Name))
            {
                if (Stopping)
                {
                    return;
                }
                if (options.PauseSeconds > 0)
                {
                    Thread.Sleep(TimeSpan.FromSeconds(options.PauseSeconds));
                }
                Say($"{_progress.Stamp()} {record.Name} run {run}/{options.Runs}: {contender.Name}");
                var result = IdleRun(record, scenario.Path, contender, run, count, dotnet, logDir, plaintext, warmupTool);
                if (Stopping)
                {
                    return; // a run cut short by Ctrl-C is not a measurement
                }
                file.Runs.Add(result);
                if (result.RssKiBPerConnection is double perConnection)
                {
                    Say($"    RSS {Mib(result.RssBeforeKiB)} -> {Mib(result.RssAfterKiB)} MiB with {result.Requests:#,0} connections open: " +
                        $"{perConnection:0.00} KiB per connection; server fds {result.FdsBefore} -> {result.FdsAfter}; opened in {result.OpenSeconds:0.0} s" +
                        (result.Settled == false ? $" (⚠ RSS still moving after {MaxSettleSeconds} s)" : ""));
                }
                if (result.RssKiBPerConnectionAfterGc is double afterGc)
                {
                    Say($"    after a full GC: RSS {Mib(result.RssBeforeGcKiB)} -> {Mib(result.RssAfterGcKiB)} MiB: {afterGc:0.00} KiB per connection; " +
                        $"managed heap {MibOfBytes(result.HeapBeforeBytes)} -> {MibOfBytes(result.HeapAfterBytes)} MiB: {result.HeapKiBPerConnection:0.00} KiB per connection" +
                        (result.GcSettled == false ? $" (⚠ RSS still moving after {MaxSettleSeconds} s)" : ""));
                }
                if (result.GcError is not null)
                {
                    Say($"    ⚠ no after-GC figure: {result.GcError}");
                }
                if (result.HasErrors)
                {
                    Say($"    ⚠ {result.ErrorDetail}");
                }
                if (result.Failure is not null)
                {
                    Say($"    ⚠ {result.Failure}");
                }
                _progress.Done(IdleRunSeconds + options.PauseSeconds);
            }
        }
    }

    private RunRecord IdleRun(ScenarioRecord scenario, string path, Contender contender, int run, int count, string dotnet, string logDir, Scenario plaintext, ILoadTool warmupTool)
    {
        int port = NextPort();
        var launch = Launch(contender, dotnet, s_sample, port) with { GcEndpoint = true };
        var result = new RunRecord
        {
            Scenario = scenario.Name,
            Contender = contender.Name,
            Run = run,
            Tool = "runner",
            StartedUtc = DateTime.UtcNow,
            IdleConnections = count,
            Command = [.. launch.Command],
        };
        string log = Path.Combine(logDir, $"server-{contender.Name}{(_place.Unpinned ? "-defaults" : "")}-run{run.ToString(CultureInfo.InvariantCulture)}.log");
        using var server = ServerProcess.Start(launch, log, out string? error);
        if (server is null)
        {
            result.Failure = $"the server did not start: {error} (log: idle-logs/{Path.GetFileName(log)})";
            return result;
        }
        if (contender.ExpectedEngine is not null && server.Engine != contender.ExpectedEngine)
        {
            result.Failure = $"engine is {server.Engine ?? "unknown (no engine line logged)"}, expected {contender.ExpectedEngine}";
            return result;
        }
        if (server.MaxOpenFiles is long serverLimit && serverLimit < count + 100)
        {
            result.Failure = $"the server may open only {serverLimit} files (RLIMIT_NOFILE), too few for {count} connections";
            return result;
        }

        // Warm-up: the request path JIT-compiled, the pools filled, as on a server in service.
        var warm = Measure(plaintext, warmupTool, server, Spec(plaintext, server, IdleWarmupSeconds, rate: null), run: 0, pauseSeconds: 0, countSyscalls: false);
        if (Stopping)
        {
            return result;
        }
        if (warm.Failure is not null || warm.Requests == 0)
        {
            result.Failure = $"the warm-up failed: {warm.Failure ?? "no request completed"}";
            return result;
        }

        var (before, _, settledBefore) = ProcessMemory.Settle(server.Pid, RssTolerance, MaxSettleSeconds, ChildProcesses.Cancellation.Token);
        int? fdsBefore = ProcessMemory.OpenFds(server.Pid);
        result.RssBeforeKiB = before;
        result.FdsBefore = fdsBefore;
        if (before is null || Stopping)
        {
            result.Failure ??= "the server exited before its RSS was read (see its log)";
            return result;
        }

        // The GC-normalized read: a full GC on an extra connection, then the RSS once settled again.
        var gcBefore = CollectAndSettle(server, port);
        result.RssBeforeGcKiB = gcBefore.RssKiB;
        result.HeapBeforeBytes = gcBefore.HeapBytes;
        result.GcSettled = gcBefore.RssKiB is null ? null : gcBefore.Settled;
        result.GcError = gcBefore.Error is null ? null : $"before opening the connections: {gcBefore.Error}";
        if (Stopping)
        {
            return result;
        }
        if (!server.IsAlive)
        {
            result.Failure = "the server exited after POST /gc, before the connections were opened (see its log)";
            return result;
        }

        long? ticksBefore = CpuTime.ProcessTicks(server.Pid);
        using (var connections = IdleConnections.Open(port, path, count, IdleParallelOpens,
            TimeSpan.FromSeconds(60), ChildProcesses.Cancellation.Token))
        {
            result.OpenSeconds = connections.Seconds;
            result.Requests = connections.Opened;
            result.SocketErrors = connections.Failed;
            if (connections.Failed > 0)
            {
                result.ErrorDetail = $"{connections.Failed} of {count} connections were not opened and answered; first error: {connections.FirstError}";
            }
            if (Stopping)
            {
                return result;
            }

            var (after, settleSeconds, settledAfter) = ProcessMemory.Settle(server.Pid, RssTolerance, MaxSettleSeconds, ChildProcesses.Cancellation.Token);
            long? ticksAfter = CpuTime.ProcessTicks(server.Pid);
            result.RssAfterKiB = after;
            result.FdsAfter = ProcessMemory.OpenFds(server.Pid);
            result.SettleSeconds = settleSeconds;
            result.Settled = settledBefore && settledAfter;
            result.WallSeconds = connections.Seconds + settleSeconds;
            if (ticksBefore is long t0 && ticksAfter is long t1)
            {
                result.ServerCpuTicks = t1 - t0;
                // CPU to accept, serve and hold each connection (opening to settled).
                result.CpuUsPerRequest = connections.Opened > 0 ? (t1 - t0) * 1e6 / CpuTime.TicksPerSecond / connections.Opened : null;
            }
            if (after is null || !server.IsAlive)
            {
                result.Failure = "the server exited with the connections open (see its log)";
                return result;
            }
            if (connections.Opened == 0)
            {
                result.Failure = $"no connection was opened and answered: {connections.FirstError}";
                return result;
            }
            result.RssKiBPerConnection = (double)(after.Value - before.Value) / connections.Opened;

            // The same GC-normalized read with the connections open (skipped if the first one failed).
            if (gcBefore.Error is null)
            {
                var gcAfter = CollectAndSettle(server, port);
                if (Stopping)
                {
                    return result;
                }
                result.RssAfterGcKiB = gcAfter.RssKiB;
                result.HeapAfterBytes = gcAfter.HeapBytes;
                if (gcAfter.Error is not null)
                {
                    result.GcError = $"with the connections open: {gcAfter.Error}";
                }
                if (gcAfter.RssKiB is not null)
                {
                    result.GcSettled = result.GcSettled == true && gcAfter.Settled;
                }
                if (result.RssBeforeGcKiB is long gcRss0 && gcAfter.RssKiB is long gcRss1)
                {
                    result.RssKiBPerConnectionAfterGc = (double)(gcRss1 - gcRss0) / connections.Opened;
                }
                if (result.HeapBeforeBytes is long heap0 && gcAfter.HeapBytes is long heap1)
                {
                    result.HeapKiBPerConnection = (heap1 - heap0) / 1024.0 / connections.Opened;
                }
                if (!server.IsAlive)
                {
                    result.Failure = "the server exited after POST /gc with the connections open (see its log)";
                    return result;
                }
            }
        }

        // The connections are closed: the server should let go of them (bounded wait).
        var closing = System.Diagnostics.Stopwatch.StartNew();
        while (closing.Elapsed.TotalSeconds < MaxCloseSeconds && !Stopping)
        {
            if (ProcessMemory.OpenFds(server.Pid) is not int fds || fds <= (fdsBefore ?? 0) + Math.Max(16, count / 100))
            {
                result.CloseSeconds = closing.Elapsed.TotalSeconds;
                break;
            }
            Thread.Sleep(100);
        }
        if (result.CloseSeconds is null && !Stopping)
        {
            result.Failure = $"the server still held {ProcessMemory.OpenFds(server.Pid)} fds {MaxCloseSeconds} s after the client closed every connection ({fdsBefore} before)";
        }
        return result;
    }

    /// <summary>
    /// One POST /gc (bounded; on a connection of its own), then the RSS once settled again: the RSS,
    /// the managed heap bytes the server answered, whether the RSS settled, or why there is no figure.
    /// </summary>
    private (long? RssKiB, long? HeapBytes, bool Settled, string? Error) CollectAndSettle(ServerProcess server, int port)
    {
        var (heap, error) = ServerGc.Collect(port, ChildProcesses.Cancellation.Token);
        if (heap is null)
        {
            return (null, null, false, error);
        }
        var (rss, _, settled) = ProcessMemory.Settle(server.Pid, RssTolerance, MaxSettleSeconds, ChildProcesses.Cancellation.Token);
        return rss is null || !server.IsAlive
            ? (null, heap, false, "the server exited after POST /gc (see its log)")
            : (rss, heap, settled, null);
    }

    private static string MibOfBytes(long? bytes) => bytes is long b ? (b / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) : "?";

    private static string Mib(long? kib) => kib is long k ? (k / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) : "?";
}
