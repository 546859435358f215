// Benchmark runner for Uring.Transport: ./build.sh bench [options] (see RunnerOptions.Usage).
//
// Starts Uring.Perf.App once per contender (sockets, uring, uring-epoll, ...), pinned to the
// server CPU, drives each with wrk / bombardier / h2load pinned to the load CPU, and writes
// perf/results/<timestamp>/{report.md,runs.json,chart.svg} (+ latest/). Every child process is
// stopped on success, failure, Ctrl-C and SIGTERM/SIGHUP.

using System.Runtime.InteropServices;
using Uring.Perf.Runner.Processes;
using Uring.Perf.Runner.Results;

// taskset, perf, /proc: the runner is Linux-only, like the transport it measures.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Uring.Perf.Runner;

public static class Program
{
    public static int Main(string[] args)
    {
        if (!CommandLine.TryParse(args, RunnerOptions.Usage, RunnerOptions.Parse, out RunnerOptions? options, out int parseExit))
            return parseExit;

        if (options.RenderDir is string renderDir)
        {
            string runsFile = Path.Combine(renderDir, "runs.json");
            if (!File.Exists(runsFile))
            {
                Console.Error.WriteLine($"error: --render: {runsFile} does not exist (give a folder the runner wrote, e.g. perf/results/latest)");
                return 2;
            }
            var saved = RunsFile.FromJson(File.ReadAllText(runsFile));
            Console.WriteLine(ResultWriter.Write(saved, renderDir, rawRuns: false));
            return 0;
        }

        // First Ctrl-C: stop the children, write what was measured, exit. A second one: exit now.
        Console.CancelKeyPress += (_, e) =>
        {
            bool first = !ChildProcesses.Cancellation.IsCancellationRequested;
            e.Cancel = first;
            Console.Error.WriteLine(first ? "\nCtrl-C: stopping every process and writing partial results (Ctrl-C again to quit now)" : "\nCtrl-C again: quitting");
            ChildProcesses.RequestStop();
        };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => ChildProcesses.StopAll();
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var onHup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);

        string root = FindRepoRoot();
        string resultsDir = options.OutDir is null ? Path.Combine(root, "perf", "results") : Path.GetFullPath(options.OutDir);
        var started = DateTime.UtcNow;
        string runDir = Path.Combine(resultsDir, started.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture) + (options.Quick ? "-quick" : ""));
        Directory.CreateDirectory(runDir);

        var file = new RunsFile
        {
            Quick = options.Quick,
            StartedUtc = started,
            Machine = MachineInfo.Collect(options, root),
            Settings = new RunSettings
            {
                Runs = options.Runs,
                DurationSeconds = options.DurationSeconds,
                WarmupSeconds = options.WarmupSeconds,
                ScenarioWarmupSeconds = options.ScenarioWarmupSeconds,
                PauseSeconds = options.PauseSeconds,
                Tool = options.Tool,
                CountSyscalls = options.CountSyscalls,
                H2cEndpoint = options.H2cEndpoint,
                CommandLine = [.. args],
                Passes = [.. options.Passes.Select(p => p.Unpinned ? "defaults" : "pinned")],
                DefaultsLoadThreads = options.DefaultsPass ? Placement.Defaults().LoadThreads : null,
                IdleConnections = options.Scenarios.Any(s => s.Kind == ScenarioKind.Idle) ? options.IdleConnections : null,
                BaselineBuild = options.BaselineBuild,
            },
        };
        if (options.PinnedPass && options.ServerCpuList.Intersect(options.LoadCpuList).Any())
        {
            file.Notes.Add($"The server CPUs ({options.ServerCpus}) and the load CPUs ({options.LoadCpus}) overlap: server and load generator compete for the same core.");
        }
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("URING_TRANSPORT_ENGINE")))
        {
            file.Notes.Add("URING_TRANSPORT_ENGINE was set in the runner's environment; it was removed for the servers, so each contender runs the engine it names.");
        }

        Benchmark.Say($"==> Uring.Transport benchmark{(options.Quick ? " (--quick: a smoke run, not results)" : "")}: " +
            $"{string.Join(", ", options.Contenders.Select(c => c.Name))}; {string.Join(", ", options.Scenarios.Select(s => s.Name))}; " +
            $"{options.Runs} x {options.DurationSeconds} s; {string.Join("; then ", options.Passes.Select(p => p.Describe()))}");
        Benchmark.Say($"    results: {runDir}");

        int exitCode = 0;
        using (var benchmark = new Benchmark(options, root, runDir, file))
        {
            try
            {
                benchmark.Execute();
            }
            catch (BenchmarkException ex)
            {
                Console.Error.WriteLine($"ERROR: {ex.Message}");
                file.Notes.Add($"The benchmark stopped: {ex.Message.ReplaceLineEndings(" ")}");
                exitCode = 1;
            }
            finally
            {
                benchmark.Dispose();
                ChildProcesses.StopAll();
            }
        }

        file.Interrupted = ChildProcesses.Cancellation.IsCancellationRequested;
        file.FinishedUtc = DateTime.UtcNow;
        string report = ResultWriter.Write(file, runDir);
        string latest = ResultWriter.UpdateLatest(file, runDir, Path.Combine(resultsDir, "latest"));

        Console.WriteLine();
        Console.WriteLine(report);
        Benchmark.Say($"==> wrote {Path.Combine(runDir, "report.md")}, runs.json, chart.svg; {latest}");
        if (file.Interrupted)
        {
            return 130;
        }
        return exitCode;
    }

    private static void OnSignal(PosixSignalContext context)
    {
        // Handle like a first Ctrl-C: stop the children, write partial results, exit.
        context.Cancel = true;
        ChildProcesses.RequestStop();
    }

    /// <summary>The folder holding Uring.Transport.sln: the working directory or one above it, else above the runner's binaries.</summary>
    private static string FindRepoRoot()
    {
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Uring.Transport.sln")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException("cannot find Uring.Transport.sln above the working directory or the runner");
    }
}
