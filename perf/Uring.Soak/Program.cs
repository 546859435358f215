// Soak test for Uring.Transport: ./build.sh soak [--minutes N] [--engines LIST] [--workers N] [--seed N]
//
// For each engine (default: uring, then uring-epoll) it starts perf/Uring.Perf.App with
// --diagnostics, runs a mixed load for N minutes (keep-alive, pipelined, uploads, downloads,
// client aborts, resets; every byte of every answer read to its end is checked), samples the
// server once a second (RSS, fds, pool bytes, loop queue length, connections, provided buffers),
// stops the load, waits for the server to drain, stops it with SIGTERM and prints a summary
// table. The exit code is 0 only if every engine passed; see Verdict for the rules.

using System.Diagnostics;
using System.Globalization;

using Uring.Perf;

namespace Uring.Soak;

public static class Program
{
    private const string Usage =
        "usage: Uring.Soak [--minutes N] [--engines uring,uring-epoll] [--workers N] [--seed N]\n" +
        "  --minutes N   how long each engine runs (fractions allowed, e.g. 0.5). Default: 10\n" +
        "  --engines     comma-separated: uring (engine Auto), uring-epoll. Default: uring,uring-epoll\n" +
        "  --workers N   concurrent clients. Default: 16\n" +
        "  --seed N      seed of the load's random choices and bodies. Default: 1";

    private sealed record Settings(double Minutes, string[] Engines, int Workers, int Seed);

    /// <summary>Parses the command line; null means help was asked for. Throws ArgumentException on bad input.</summary>
    private static Settings? Parse(string[] args)
    {
        double minutes = 10;
        string[] engines = ["uring", "uring-epoll"];
        int workers = 16, seed = 1;
        var line = new CommandLine(args);
        while (line.MoveNext())
        {
            switch (line.Name)
            {
                case "--minutes":
                    minutes = line.Number(0, 24 * 60);
                    if (minutes == 0) throw new ArgumentException("--minutes must be above 0");
                    break;
                case "--engines":
                    engines = line.Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    if (engines.Length == 0 || engines.Any(e => e is not ("uring" or "uring-epoll")))
                        throw new ArgumentException("--engines takes uring and/or uring-epoll");
                    break;
                case "--workers": workers = line.Int(1); break;
                case "--seed": seed = line.Int(0); break;
                case "-h" or "--help": return null;
                default: throw line.Unknown();
            }
        }
        return new Settings(minutes, engines, workers, seed);
    }

    public static async Task<int> Main(string[] args)
    {
        if (!CommandLine.TryParse(args, Usage, Parse, out Settings? settings, out int exitCode))
            return exitCode;
        (double minutes, string[] engines, int workers, int seed) = settings;

        var duration = TimeSpan.FromMinutes(minutes);
        var results = new List<(string Engine, Verdict Verdict)>();
        foreach (string engine in engines)
        {
            Verdict verdict;
            try
            {
                verdict = await SoakAsync(engine, duration, workers, seed);
            }
            catch (Exception e) when (e is InvalidOperationException or FileNotFoundException)
            {
                verdict = new Verdict();
                verdict.Failures.Add(e.Message);
                Console.WriteLine($"{engine}: FAIL: {e.Message}");
            }
            results.Add((engine, verdict));
            Console.WriteLine(verdict.Report);
        }

        bool passed = results.All(r => r.Verdict.Failures.Count == 0);
        Console.WriteLine($"soak: {(passed ? "PASS" : "FAIL")} ({string.Join(", ", results.Select(r => $"{r.Engine} {(r.Verdict.Failures.Count == 0 ? "passed" : "failed")}"))})");
        return passed ? 0 : 1;
    }

    private static async Task<Verdict> SoakAsync(string engine, TimeSpan duration, int workers, int seed)
    {
        Console.WriteLine($"==> {engine}: starting the sample server");
        using SoakServer server = await SoakServer.StartAsync(engine);
        var sampler = new Sampler(server);
        Sample idle = await sampler.TakeAsync(0) ?? throw new InvalidOperationException("The sample server did not answer GET /diag.");
        sampler.Samples.Clear();
        Console.WriteLine($"==> {engine}: pid {server.Pid} on {server.EndPoint}; {workers} workers for {duration.TotalSeconds:F0} s; idle: {Verdict.Describe(idle)}");

        var load = new Workload(server.EndPoint, seed);
        using var stop = new CancellationTokenSource(duration);
        var clock = Stopwatch.StartNew();
        Task running = load.RunAsync(workers, stop.Token);

        double progressEvery = duration.TotalSeconds >= 120 ? 30 : 10, nextProgress = progressEvery;
        using var tick = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (clock.Elapsed < duration && await tick.WaitForNextTickAsync())
        {
            double t = clock.Elapsed.TotalSeconds;
            Sample? sample = await sampler.TakeAsync(Math.Min(t, duration.TotalSeconds));
            if (t >= nextProgress)
            {
                nextProgress += progressEvery;
                Console.WriteLine($"    {t,5:F0} s  {load.TotalRequests,9} requests  {load.TotalFailures} failures  {Verdict.Describe(sample)}");
            }
        }

        // Workers finish the scenario they are in (each is bounded by its own timeout).
        if (await Task.WhenAny(running, Task.Delay(TimeSpan.FromSeconds(60))) != running)
            Console.WriteLine($"    {engine}: some workers did not finish within 60 s of the end");

        int underLoad = sampler.Samples.Count;
        Sample? drained = null;
        var drainClock = Stopwatch.StartNew();
        while (drainClock.Elapsed < TimeSpan.FromSeconds(15))
        {
            drained = await sampler.TakeAsync(clock.Elapsed.TotalSeconds) ?? drained;
            if (drained is not null && Verdict.IsDrained(idle, drained)) break;
            await Task.Delay(500);
        }
        sampler.Samples.RemoveRange(underLoad, sampler.Samples.Count - underLoad); // not part of the load's samples
        sampler.Close();

        int? exitCode = await server.StopAsync(TimeSpan.FromSeconds(30));
        return Verdict.Judge(engine, server.EngineLine, duration, workers, load, idle, sampler.Samples, sampler.Missed,
            drained, server.Problems(), exitCode);
    }
}
