using Uring.Perf;
using Uring.Soak;
using Xunit.Sdk;

namespace Uring.Transport.Tests;

/// <summary>
/// The soak's mixed, byte-verified HTTP/1.1 workload against the sample app's endpoints, on loops
/// whose rings inject the faults a kernel could produce (<see cref="FaultInjectingRing"/>: failed
/// recvs, sends and accepts with real errnos, short sends and receives, delayed completions), from
/// a seed. While faults are injected, a connection the server resets or closes early is tolerated;
/// a wrong byte, an answer to another request, or a stall is not. Then injection stops, and a short
/// clean phase must succeed in full, and every fd, pooled byte and provided buffer must be back.
/// </summary>
/// <remarks>
/// A failure names the seed and what was injected. To replay seeds, set URING_FAULT_SEEDS (comma
/// separated) and filter on this class; the timing of a run still decides which operation each
/// choice lands on, so a replay is likely, not certain, to hit the same path. To hunt with more
/// pressure, URING_FAULT_RATE_SCALE multiplies every rate (probabilities capped at 0.5).
/// Runs in the resource-counts collection: alone, so fd counts are this server's, and no other
/// test's client connections share the decorated loops.
/// </remarks>
[Collection(ResourceCountsCollection.Name)]
public sealed class FaultInjectionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan FaultPhase = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan CleanPhase = TimeSpan.FromSeconds(1);

    /// <summary>One scenario (a connection's few requests) answered in full within this, or it counts as a stall.</summary>
    private static readonly TimeSpan ScenarioTimeout = TimeSpan.FromSeconds(10);

    private const int FaultWorkers = 8;
    private const int CleanWorkers = 4;

    private static readonly int[] s_defaultSeeds = [1, 2, 3];

    /// <summary>Every engine of <see cref="EnginesAttribute"/> with each seed.</summary>
    public static IEnumerable<object[]> Cases()
    {
        int[] seeds = Environment.GetEnvironmentVariable("URING_FAULT_SEEDS") is { Length: > 0 } list
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray()
            : s_defaultSeeds;
        foreach (object[] engine in new EnginesAttribute().GetData(typeof(FaultInjectionTests).GetMethod(nameof(Mixed_verified_load_survives_injected_faults_and_leaves_nothing_behind))!))
            foreach (int seed in seeds)
                yield return [engine[0], seed];
    }

    [Theory, MemberData(nameof(Cases))]
    public async Task Mixed_verified_load_survives_injected_faults_and_leaves_nothing_behind(UringEngine engine, int seed)
    {
        var clock = Stopwatch.StartNew();
        var faults = new FaultInjection(seed, Rates());
        Workload? faulty = null, clean = null;
        Exception? failure = null;
        // No server log in the output: per-connection Debug lines by the thousand; warnings and errors are written below.
        TestServer server = await TestServer.StartAsync(engine, app => app.Run(SampleEndpoints.Handle), output: null, new ServerSetup
        {
            Environment = TestEnvironment.Decorated(faults.Decorate),
        });
        AllowConsequencesOfInjectedEnomem(server.Logs, faults);
        try
        {
            ServerResources baseline = await ServerResources.BaselineAsync(server);
            IPEndPoint endPoint = server.EndPoint!;

            // 1. Faults on: resets and early closes are tolerated, wrong answers and stalls are not.
            faults.StartInjecting();
            faulty = new Workload(endPoint, seed) { Tolerant = true, ScenarioTimeout = ScenarioTimeout };
            await RunPhaseAsync(faulty, FaultWorkers, FaultPhase, "fault phase");
            faults.StopInjecting();
            output.WriteLine($"{faults.Describe()}");
            output.WriteLine($"fault phase ({FaultWorkers} workers, {FaultPhase.TotalSeconds} s): {faulty.TotalRequests} requests, " +
                $"{faulty.TotalInterrupted} scenarios cut short by the server, {faulty.TotalFailures} failures{Environment.NewLine}{faulty.Describe()}");
            foreach (string sample in faulty.InterruptionSamples.Take(5)) output.WriteLine("  cut short: " + sample);

            Check(faulty.TotalFailures == 0, $"wrong, malformed or missing answers while faults were injected: " +
                string.Join("; ", faulty.FailureSamples.Take(5)));
            Check(faulty.TotalRequests > 0, "no request was answered while faults were injected");
            Check(InjectedErrors(faults) > 0, "no operation was failed: the decorator injected nothing");
            Check(server.Group.Loops.All(l => l.IsRunning), "an I/O loop stopped while faults were injected");
            Check(await Eventually.HoldsAsync(() => faults.Held == 0, Limits.Stop),
                $"the rings still hold {faults.Held} completion(s) {Limits.Stop.TotalSeconds} s after injection stopped (the loops stopped draining)");

            // 2. Faults off: everything must succeed.
            clean = new Workload(endPoint, seed + 1_000_000) { ScenarioTimeout = ScenarioTimeout };
            await RunPhaseAsync(clean, CleanWorkers, CleanPhase, "clean phase");
            output.WriteLine($"clean phase ({CleanWorkers} workers, {CleanPhase.TotalSeconds} s): {clean.TotalRequests} requests, {clean.TotalFailures} failures");
            Check(clean.TotalFailures == 0, "wrong, malformed or missing answers after injection stopped: " +
                string.Join("; ", clean.FailureSamples.Take(5)));
            Check(clean.TotalRequests > 0, "no request was answered after injection stopped");

            // 3. Drained: no connection, provided buffer, pooled byte or fd more than before the load.
            await baseline.AssertServerRecoveredAsync(server, output);

            // 4. Stopped in time, and nothing logged as an error (injected faults log at Debug).
            await server.StopAsync();
            Check(faults.Unbalanced() is null, $"the decorator lost or duplicated completions: {faults.Unbalanced()}");
            output.WriteLine($"completions: {faults.Rings.Sum(r => r.Received)} from the kernel + {faults.Rings.Sum(r => r.Synthesized)} synthesized = " +
                $"{faults.Rings.Sum(r => r.Delivered)} delivered");
            IReadOnlyList<LogCollector.Entry> errors = server.Logs.Errors();
            Check(errors.Count == 0, $"the server logged {errors.Count} error(s):{Environment.NewLine}{string.Join(Environment.NewLine, errors.Take(10))}");
        }
        catch (Exception e)
        {
            failure = e as FaultInjectionException ?? new FaultInjectionException(Context(e.Message), e);
            faults.StopInjecting(); // the stop below is then the transport's ordinary one
        }

        foreach (LogCollector.Entry entry in server.Logs.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).Take(50))
            output.WriteLine("server log: " + entry);
        try
        {
            await server.DisposeAsync(); // stops (bounded) and checks the log again; after a failure, only its own failure is reported
        }
        catch (Exception e)
        {
            failure ??= new FaultInjectionException(Context(e.Message), e);
        }
        output.WriteLine($"{engine}, seed {seed}: {clock.Elapsed.TotalSeconds:F1} s");
        if (failure is not null) throw failure;

        void Check(bool condition, string message)
        {
            if (!condition) throw new FaultInjectionException(Context(message), null);
        }

        string Context(string message) =>
            $"{engine}, {faults.Describe()} (replay: URING_FAULT_SEEDS={seed}): {message}" +
            (faulty is null ? "" : $"{Environment.NewLine}fault phase: {faulty.TotalRequests} requests, {faulty.TotalInterrupted} cut short, {faulty.TotalFailures} failures") +
            (clean is null ? "" : $"{Environment.NewLine}clean phase: {clean.TotalRequests} requests, {clean.TotalFailures} failures");
    }

    /// <summary>The default rates, times URING_FAULT_RATE_SCALE when set.</summary>
    private static FaultRates Rates()
    {
        var rates = new FaultRates();
        if (Environment.GetEnvironmentVariable("URING_FAULT_RATE_SCALE") is not { Length: > 0 } text) return rates;
        double scale = double.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        double Scaled(double p) => Math.Min(0.5, p * scale);
        return rates with
        {
            RecvError = Scaled(rates.RecvError),
            SendError = Scaled(rates.SendError),
            AcceptError = Scaled(rates.AcceptError),
            ShortSend = Scaled(rates.ShortSend),
            ShortRecv = Scaled(rates.ShortRecv),
            Delay = Scaled(rates.Delay),
        };
    }

    /// <summary>
    /// Errors Kestrel rightly logs for an injected ENOMEM, and only those. ENOMEM on a send is an
    /// unexpected error, not a reset: as Kestrel's Sockets transport does, the transport completes
    /// the output with it, and the input as well (the connection's shutdown reason), as the
    /// SocketException "ENOMEM (12)". The app's next flush or body read throws it, and Kestrel logs
    /// "An unhandled exception was thrown by the application" (13) and "Unexpected exception in
    /// TimingPipeFlusher.FlushAsync" (0) at Error. When the throw came from the request body,
    /// Kestrel's own drain of that request then fails with "Reading is already in progress" (67,
    /// RequestBodyDrainBodyReaderInvalidState): allowed only for a connection with such an ENOMEM entry.
    /// The transport itself logs injected faults at Debug; nothing else is allowed.
    /// </summary>
    private static void AllowConsequencesOfInjectedEnomem(LogCollector logs, FaultInjection faults)
    {
        string enomem = Errno.Describe(Errno.ENOMEM);
        bool Injected() => faults.Total(InjectedFault.SendEnomem) + faults.Total(InjectedFault.RecvEnomem) > 0;
        bool IsKestrel(LogCollector.Entry e) => e.Category.StartsWith("Microsoft.AspNetCore.Server.Kestrel", StringComparison.Ordinal);
        bool HasEnomem(Exception? e)
        {
            for (; e is not null; e = e.InnerException)
                if (e is SocketException && e.Message == enomem) return true;
            return false;
        }
        bool IsEnomemError(LogCollector.Entry e) => IsKestrel(e) && e.EventId.Id is 0 or 13 && HasEnomem(e.Exception);
        static string? ConnectionOf(LogCollector.Entry e) =>
            System.Text.RegularExpressions.Regex.Match(e.Message, "Connection id \"([^\"]+)\"") is { Success: true } m ? m.Groups[1].Value : null;

        logs.Allow(e => Injected() && IsEnomemError(e));
        logs.Allow(e => Injected() && IsKestrel(e) && e.EventId.Id == 67 && e.Exception is InvalidOperationException
            && ConnectionOf(e) is { } id && logs.Entries.Any(x => IsEnomemError(x) && ConnectionOf(x) == id));
    }

    /// <summary>Runs <paramref name="load"/> for <paramref name="length"/>; its workers then finish their scenario, each bounded by its timeout.</summary>
    private static async Task RunPhaseAsync(Workload load, int workers, TimeSpan length, string phase)
    {
        using var stop = new CancellationTokenSource(length);
        Task running = load.RunAsync(workers, stop.Token);
        TimeSpan bound = length + ScenarioTimeout + TimeSpan.FromSeconds(5);
        if (await Task.WhenAny(running, Task.Delay(bound)) != running)
            throw new TimeoutException($"the {phase}'s workers did not finish within {bound.TotalSeconds} s (a scenario outlived its own timeout)");
        await running;
    }

    private static long InjectedErrors(FaultInjection faults) =>
        Enum.GetValues<InjectedFault>().Where(f => f <= InjectedFault.AcceptEagain).Sum(faults.Total);

    /// <summary>A failure whose message already names the seed and the injected faults.</summary>
    private sealed class FaultInjectionException(string message, Exception? inner) : XunitException(message, inner);
}
