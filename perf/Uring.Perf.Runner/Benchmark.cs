using System.Diagnostics;
using System.Globalization;
using Uring.Perf.Runner.Load;
using Uring.Perf.Runner.Measure;
using Uring.Perf.Runner.Processes;
using Uring.Perf.Runner.Results;

namespace Uring.Perf.Runner;

/// <summary>A failure that ends the benchmark (the app does not build, no contender starts).</summary>
internal sealed class BenchmarkException(string message) : Exception(message);

/// <summary>
/// The benchmark itself: builds the app, starts every contender, and for each scenario warms
/// the contenders up and measures them run by run, alternating, in an order that changes from run
/// to run so that it favours no one (A, B, C, then C, B, A, then B, C, A, ...: see
/// <see cref="InRunOrder{T}"/>). With
/// --defaults it does it all again in a second pass, with nothing pinned (see <see cref="Placement"/>).
/// Every process is started from the main thread (see <see cref="ChildProcesses"/>).
/// </summary>
internal sealed partial class Benchmark(RunnerOptions options, string repoRoot, string runDir, RunsFile file) : IDisposable
{
    /// <summary>Per run, on top of its duration: starting the tool (and perf), reading /proc, parsing.</summary>
    private const double RunOverheadSeconds = 0.5;

    /// <summary>fixed-rate with wrk: each connection's nominal cycle (pause + request) in ms; sets the connection count.</summary>
    private const double FixedRateCycleMs = 4;

    private const string AppProject = "perf/Uring.Perf.App/Uring.Perf.App.csproj";
    private const string AppDll = "perf/Uring.Perf.App/bin/Release/net10.0/Uring.Perf.App.dll";

    private readonly Progress _progress = new();
    private readonly List<ServerProcess> _servers = [];
    private readonly Dictionary<ServerProcess, ContenderRecord> _records = [];
    /// <summary>The PIDs of the servers that have had their first (long) warm-up: a fresh process is cold.</summary>
    private readonly HashSet<int> _warm = [];
    private readonly HashSet<int> _ports = [];
    private int _nextPort = options.BasePort;
    private Placement _place = options.Passes[0];
    private LoadTools _tools = null!;
    private SyscallCounter? _syscalls;

    /// <summary>How a fixed-rate run is paced: wrk by a pause per connection, bombardier by a total rate.</summary>
    private sealed record FixedRate(double TargetRps, int Connections, double? DelayMs, double? RateRps);

    private static bool Stopping => ChildProcesses.Cancellation.IsCancellationRequested;

    public static void Say(string line)
    {
        Console.WriteLine(line);
        Console.Out.Flush();
    }

    public void Execute()
    {
        BuildApp();
        FindTools();
        FileLimit.RaiseOwn(FileLimit.Wanted); // the idle scenario's client sockets are this process's

        var scenarios = options.Scenarios;
        var passes = options.Passes;
        double passSeconds = scenarios.Select((s, k) => PlannedSeconds(s, firstScenario: k == 0)).Sum();
        for (int p = 0; p < passes.Count && !Stopping; p++)
        {
            _place = passes[p];
            _warm.Clear(); // each pass starts its own servers
            if (passes.Count > 1 || _place.Unpinned)
            {
                Say("");
                Say($"==> pass {p + 1}/{passes.Count}: {_place.Describe()}");
            }
            // The idle scenario starts a fresh server per contender and run, the app scenarios their own
            // apps: they need none of these.
            if (scenarios.Any(s => s.Kind != ScenarioKind.Idle && !s.OwnServers))
            {
                StartServers();
            }
            for (int i = 0; i < scenarios.Count && !Stopping; i++)
            {
                double left = scenarios.Skip(i).Select((s, k) => PlannedSeconds(s, firstScenario: i + k == 0)).Sum();
                _progress.SetLeft(left + (passes.Count - p - 1) * passSeconds);
                RunScenario(scenarios[i]);
                ResultWriter.Write(file, runDir); // partial results survive a crash
            }
            StopServers();
        }
    }

    // ---- set-up ------------------------------------------------------------------------------

    private void BuildApp()
    {
        if (!options.SkipBuild)
        {
            Build(AppProject, "the app");
            if (options.Scenarios.Any(s => s.Kind == ScenarioKind.HttpClient))
            {
                Build(HttpClientLoad.Project, "the HttpClient load client");
            }
            foreach (var app in AppsOf(options.Scenarios))
            {
                Build(app.Project, app.What);
            }
        }
        foreach (string dll in AppsOf(options.Scenarios).Select(a => a.Dll).Prepend(AppDll))
        {
            if (!File.Exists(Path.Combine(repoRoot, dll)))
            {
                throw new BenchmarkException($"{dll} does not exist: build it (drop --skip-build)");
            }
            // The baseline build is another checkout, built there: the runner only runs it.
            if (options.BaselineBuild is string baseBuild && !File.Exists(Path.Combine(baseBuild, dll)))
            {
                throw new BenchmarkException($"--baseline-build: {Path.Combine(baseBuild, dll)} does not exist: build that checkout " +
                    $"(cd {baseBuild} && dotnet build Uring.Transport.sln -c Release)");
            }
        }
    }

    private void Build(string project, string what)
    {
        if (Stopping)
        {
            return;
        }
        Say($"==> dotnet build -c Release {project}");
        var clock = Stopwatch.StartNew();
        // --disable-build-servers: leave no MSBuild node or compiler server running afterwards.
        var r = ChildProcesses.Run("dotnet", ["build", "-c", "Release", project, "--nologo", "-v", "q", "--disable-build-servers"], TimeSpan.FromMinutes(10), repoRoot);
        if (r.Cancelled)
        {
            return;
        }
        if (!r.Succeeded)
        {
            throw new BenchmarkException($"building {what} failed (exit {r.ExitCode}{(r.TimedOut ? ", timed out" : "")}):\n{r.Tail(25)}");
        }
        Say($"    built in {clock.Elapsed.TotalSeconds:0} s");
    }

    private void FindTools()
    {
        _tools = LoadTools.Detect(options, repoRoot, Say);
        if (!options.CountSyscalls)
        {
            file.Machine.SyscallCounting = "not counted (--no-syscalls)";
            return;
        }
        _syscalls = SyscallCounter.Probe(out string? whyNot);
        if (_syscalls is null && options.Install && ChildProcesses.Which("perf") is null)
        {
            Apt.Ensure("perf", "linux-perf", options.Install, Say);
            _syscalls = SyscallCounter.Probe(out whyNot);
        }
        if (_syscalls is null)
        {
            string note = $"Syscalls per request are not recorded (null): {whyNot}.";
            file.Notes.Add(note);
            file.Machine.SyscallCounting = $"not counted: {whyNot}";
            Say($"==> {note}");
        }
        else
        {
            file.Machine.SyscallCounting = $"{_syscalls.Version}, `perf stat -e raw_syscalls:sys_enter -p <server pid>` for the length of each run";
            Say($"==> counting syscalls with {_syscalls.Version} (raw_syscalls:sys_enter)");
        }
    }

    private void StartServers()
    {
        string dotnet = ChildProcesses.Which("dotnet") ?? throw new BenchmarkException("dotnet is not on PATH");
        bool h2Endpoint = options.H2cEndpoint && options.Scenarios.Any(s => s.Kind == ScenarioKind.H2c);
        bool tlsEndpoint = options.Scenarios.Any(s => s.Tls);
        var started = new List<ServerProcess>();

        foreach (var contender in options.Contenders)
        {
            if (Stopping)
            {
                return;
            }
            int port = NextPort();
            // Each pass's servers take new ports: the previous pass's may still have connections in TIME_WAIT.
            int? h2Port = h2Endpoint ? ServerProcess.FreePort(port + 100, _ports) : null;
            int? tlsPort = tlsEndpoint ? ServerProcess.FreePort(port + 200, _ports) : null;
            var server = StartContender(contender, dotnet, s_sample, port, h2Port, tlsPort);
            if (server is not null)
            {
                started.Add(server);
            }
        }
        if (started.Count == 0 && !Stopping)
        {
            throw new BenchmarkException("no contender started (see the server-*.log files in " + runDir + ")");
        }
    }

    /// <summary>
    /// Starts one contender's server on the server CPUs, records it in runs.json and, when it runs,
    /// in <see cref="_servers"/>; null (recorded, said) when it did not start. <paramref name="app"/>
    /// is the app to start (from the baseline build for a @base contender); <paramref name="extraArgs"/>: its own arguments after the contender's.
    /// <paramref name="tlsPort"/>: its https endpoint, left out when the app's build has no --tls.
    /// </summary>
    private ServerProcess? StartContender(Contender contender, string dotnet, AppUnderTest app, int port, int? h2Port, int? tlsPort = null, IReadOnlyList<string>? extraArgs = null)
    {
        string log = Path.Combine(runDir, $"{app.LogPrefix}-{contender.Name}{(_place.Unpinned ? "-defaults" : "")}.log");
        var launch = Launch(contender, dotnet, app, port) with { H2Port = h2Port, ExtraArgs = extraArgs ?? [] };
        if (launch.Knows(ServerLaunch.TlsArg))
        {
            launch = launch with { TlsPort = tlsPort };
        }
        var record = new ContenderRecord
        {
            Name = contender.Name,
            App = app == s_sample ? null : app.Name,
            Build = contender.BaseBuild,
            AppArgs = [.. launch.AppArgs],
            Port = port,
            H2Port = h2Port,
            TlsPort = launch.TlsPort,
            LogFile = Path.GetFileName(log),
            Unpinned = _place.Unpinned,
        };
        file.Contenders.Add(record);

        Say($"==> starting {contender.Name}: {Pinning()}dotnet {(contender.BaseBuild is null ? "" : contender.BaseBuild + "/.../")}{app.Name}.dll {string.Join(' ', record.AppArgs)}");
        if (launch.LeftOut.Count > 0)
        {
            record.LeftOutArgs = [.. launch.LeftOut];
            Say($"    not passed (its build does not have them): {string.Join(' ', launch.LeftOut)}");
        }
        var server = ServerProcess.Start(launch, log, out string? error, probe: app.Probe);
        if (server is null)
        {
            record.Error = error;
            Say($"    ⚠ {contender.Name} did not start: {error} (log: {log}); continuing without it");
            return null;
        }
        record.Started = true;
        record.Pid = server.Pid;
        record.Engine = server.Engine;
        record.EngineLine = server.EngineLine;
        record.MaxOpenFiles = server.MaxOpenFiles;
        _records[server] = record;
        if (contender.ExpectedEngine is not null && server.Engine != contender.ExpectedEngine)
        {
            record.Error = $"engine is {server.Engine ?? "unknown (no engine line logged)"}, expected {contender.ExpectedEngine}";
            Say($"    ⚠ {contender.Name}: {record.Error}");
        }
        Say($"    listening on :{port}{(h2Port is int p ? $" (h2c :{p})" : "")}{(launch.TlsPort is int t ? $" (https :{t})" : "")}, pid {server.Pid}{(server.EngineLine is null ? "" : "; " + server.EngineLine)}");
        _servers.Add(server);
        return server;
    }

    /// <summary>
    /// How to start <paramref name="app"/> for <paramref name="contender"/> in this pass: this
    /// checkout's build, or the baseline build's, which gets only the options its --help lists.
    /// </summary>
    private ServerLaunch Launch(Contender contender, string dotnet, AppUnderTest app, int port)
    {
        string dll = Path.Combine(contender.BaseBuild ?? repoRoot, app.Dll);
        return new ServerLaunch(contender, dotnet, dll, _place.ServerCpus, _place.Rings, port)
        {
            KnownOptions = contender.BaseBuild is null ? null : AppOptions.Of(dotnet, dll),
        };
    }

    /// <summary>"taskset -c 0 " when the servers are pinned, else "".</summary>
    private string Pinning() => _place.ServerCpus is null ? "" : $"taskset -c {_place.ServerCpus} ";

    /// <summary>A free port none of this run's servers has had.</summary>
    private int NextPort()
    {
        int port = ServerProcess.FreePort(_nextPort, _ports);
        _nextPort = port + 1;
        return port;
    }

    /// <summary>Stops the pass's servers.</summary>
    private void StopServers()
    {
        foreach (var server in _servers)
        {
            server.Dispose();
        }
        _servers.Clear();
        _records.Clear();
    }

    // ---- scenarios ---------------------------------------------------------------------------

    /// <summary>The time a scenario is expected to take, for the progress estimate.</summary>
    private double PlannedSeconds(Scenario scenario, bool firstScenario)
    {
        if (scenario.Kind == ScenarioKind.HttpClient)
        {
            return ClientPlannedSeconds();
        }
        if (scenario.Kind == ScenarioKind.Idle)
        {
            return IdlePlannedSeconds();
        }
        int n = options.Contenders.Count;
        // An app scenario's servers are fresh processes: each gets the first, long warm-up.
        double warmups = n * (firstScenario || scenario.OwnServers ? options.WarmupSeconds : options.ScenarioWarmupSeconds);
        double runs = options.Runs * n * (options.DurationSeconds + options.PauseSeconds + RunOverheadSeconds);
        double calibration = scenario.Kind == ScenarioKind.FixedRate ? CalibrationPasses * CalibrationSeconds : 0;
        return warmups + runs + calibration;
    }

    private int CalibrationSeconds => Math.Min(options.DurationSeconds, 5);

    /// <summary>fixed-rate with wrk: at most this many calibration runs (each corrects the pause once).</summary>
    private const int CalibrationPasses = 2;

    private void RunScenario(Scenario scenario)
    {
        var record = new ScenarioRecord
        {
            Name = _place.RecordName(scenario),
            Description = scenario.Describe(),
            Connections = scenario.Connections,
            PipelineDepth = scenario.PipelineDepth,
            Streams = scenario.Streams,
            Unpinned = _place.Unpinned,
            Idle = scenario.Kind == ScenarioKind.Idle,
            PayloadBytes = scenario.PayloadBytes,
        };
        file.Scenarios.Add(record);

        var tool = _tools.For(scenario, out string? whyNot);
        var servers = _servers.Where(s => s.IsAlive).ToList();
        if (tool is null)
        {
            NotRun(record, whyNot!);
            return;
        }
        record.Tool = $"{tool.Name} ({tool.Version})";
        if (!file.Machine.LoadTools.Contains(tool.Version))
        {
            file.Machine.LoadTools.Add(tool.Version);
        }
        if (scenario.Kind == ScenarioKind.Idle)
        {
            RunIdleScenario(scenario, record, tool);
            return;
        }
        if (scenario.OwnServers)
        {
            RunAppScenario(scenario, record, tool);
            return;
        }
        if (servers.Count == 0)
        {
            NotRun(record, "no contender is running");
            return;
        }

        if (scenario.Kind == ScenarioKind.HttpClient)
        {
            RunClientScenario(scenario, record, tool, servers);
            return;
        }

        if (scenario.Kind == ScenarioKind.H2c)
        {
            servers = H2cCapable(scenario, servers, record);
            if (servers.Count == 0)
            {
                return;
            }
        }
        if (scenario.Tls)
        {
            servers = TlsCapable(scenario, servers, record);
            if (servers.Count == 0)
            {
                return;
            }
        }

        FixedRate? rate = null;
        if (scenario.Kind == ScenarioKind.FixedRate)
        {
            rate = PlanFixedRate(scenario, tool, servers, record);
            if (rate is null || Stopping)
            {
                return;
            }
        }
        MeasureContenders(scenario, record, tool, servers, rate);
    }

    /// <summary>Warms each server up, then measures them in turn, run by run (A, B, C, A, B, C, ...).</summary>
    private void MeasureContenders(Scenario scenario, ScenarioRecord record, ILoadTool tool, List<ServerProcess> servers, FixedRate? rate)
    {
        record.Supported = true;

        Say("");
        Say($"==> {record.Name}: {record.Description}; {tool.Name}; {servers.Count} contenders x {options.Runs} runs x {options.DurationSeconds} s");

        foreach (var server in servers)
        {
            WarmUp(scenario, tool, server, rate);
            if (Stopping)
            {
                return;
            }
        }

        for (int run = 1; run <= options.Runs; run++)
        {
            foreach (var server in InRunOrder(servers, run, s => s.Contender.Name))
            {
                if (Stopping)
                {
                    return;
                }
                RunRecord result;
                if (!server.IsAlive)
                {
                    result = new RunRecord
                    {
                        Scenario = record.Name,
                        Contender = server.Contender.Name,
                        Run = run,
                        Tool = tool.Name,
                        StartedUtc = DateTime.UtcNow,
                        Failure = "the server is not running (it exited; see its log)",
                    };
                    MarkStopped(server);
                }
                else
                {
                    Say($"{_progress.Stamp()} {record.Name} run {run}/{options.Runs}: {server.Contender.Name} ({options.DurationSeconds} s)");
                    result = Measure(scenario, tool, server, Spec(scenario, server, options.DurationSeconds, rate), run, options.PauseSeconds, countSyscalls: true);
                    result.TargetRps = rate?.TargetRps;
                    if (Stopping)
                    {
                        return; // a run cut short by Ctrl-C is not a measurement
                    }
                }
                file.Runs.Add(result);
                if (result.Failure is null || result.Requests > 0)
                {
                    Say("    " + Describe(result));
                }
                if (result.Failure is not null)
                {
                    Say($"    ⚠ {result.Failure}");
                }
                _progress.Done(options.DurationSeconds + options.PauseSeconds + RunOverheadSeconds);
            }
        }
    }

    /// <summary>
    /// <paramref name="items"/> in the order run <paramref name="run"/> (from 1) measures them. A
    /// unit is an item, or a contender with its @base twin right after it (<paramref name="name"/>
    /// tells them apart); units stay together. Runs 1 and 2 take the units as given, then reversed
    /// (twins swapped too); runs 3 and 4 the same rotated by one unit; and so on. Over every 2 x units
    /// runs each contender is measured in each position equally often, and before and after its twin
    /// equally often: being first after a pause, or right after a load still winding down on a
    /// shared CPU, favours no one.
    /// </summary>
    internal static List<T> InRunOrder<T>(IReadOnlyList<T> items, int run, Func<T, string> name)
    {
        var units = new List<List<T>>();
        foreach (T item in items)
        {
            if (units.Count > 0 && Contender.CounterpartOf(name(item)) == name(units[^1][0]) && units[^1].Count == 1)
                units[^1].Add(item);
            else
                units.Add([item]);
        }
        int shift = (run - 1) / 2 % units.Count;
        var order = new List<T>(items.Count);
        for (int i = 0; i < units.Count; i++)
            order.AddRange(units[(i + shift) % units.Count]);
        if (run % 2 == 0)
            order.Reverse();
        return order;
    }

    private void NotRun(ScenarioRecord record, string why)
    {
        record.Supported = false;
        record.Note = why;
        Say("");
        Say($"==> {record.Name}: not run: {why}");
    }

    private void WarmUp(Scenario scenario, ILoadTool tool, ServerProcess server, FixedRate? rate)
    {
        bool first = _warm.Add(server.Pid);
        int seconds = first ? options.WarmupSeconds : options.ScenarioWarmupSeconds;
        if (seconds == 0)
        {
            return;
        }
        Say($"{_progress.Stamp()} {_place.RecordName(scenario)}: warming up {server.Contender.Name} for {seconds} s{(first ? " (its first load)" : "")}");
        var r = Measure(scenario, tool, server, Spec(scenario, server, seconds, rate), run: 0, pauseSeconds: 0, countSyscalls: false);
        if (r.Failure is not null || r.Requests == 0)
        {
            Say($"    ⚠ warm-up of {server.Contender.Name}: {r.Failure ?? "no request completed"}");
        }
        else
        {
            Say($"    warm-up: {MarkdownReport.Rps(r.Rps)} req/s, {MarkdownReport.Num(r.CpuUsPerRequest, "0.00")} µs CPU/req");
        }
        _progress.Done(seconds);
    }

    /// <summary>The contenders whose server answers HTTP/2 with prior knowledge; records why the others are left out.</summary>
    private List<ServerProcess> H2cCapable(Scenario scenario, List<ServerProcess> servers, ScenarioRecord record)
    {
        var h2load = _tools.H2Load!;
        var capable = new List<ServerProcess>();
        var refused = new List<string>();
        foreach (var server in servers)
        {
            if (h2load.Speaks(server.Url(scenario.Path, h2: true), out string detail))
            {
                capable.Add(server);
            }
            else
            {
                refused.Add($"{server.Contender.Name} ({detail})");
            }
        }
        string? how = options.H2cEndpoint
            ? "Each server has a second, HTTP/2-only cleartext endpoint, added by the runner through Kestrel's configuration (Kestrel__Endpoints__h2c__Protocols=Http2, --h2c-endpoint); the app's code is unchanged."
            : null;
        if (capable.Count == 0)
        {
            NotRun(record, options.H2cEndpoint
                ? $"no server answered HTTP/2 with prior knowledge on its h2c endpoint: {string.Join("; ", refused)}"
                : "the app does not serve h2c (HTTP/2 over cleartext with prior knowledge): it listens with Kestrel's default " +
                  "Protocols=Http1AndHttp2, which on a cleartext endpoint speaks HTTP/1.1 only (h2load: " + string.Join("; ", refused) + "). " +
                  "The app needs an HTTP/2-only cleartext endpoint (ListenOptions.Protocols = HttpProtocols.Http2), e.g. an " +
                  "--h2c-urls option; or run the runner with --h2c-endpoint, which adds one through Kestrel's configuration.");
            return capable;
        }
        record.Note = how;
        if (refused.Count > 0)
        {
            record.Note = (record.Note is null ? "" : record.Note + " ") + $"Left out (no h2c): {string.Join("; ", refused)}.";
        }
        return capable;
    }

    /// <summary>The contenders whose server answers over TLS on its https endpoint; records why the others are left out.</summary>
    private List<ServerProcess> TlsCapable(Scenario scenario, List<ServerProcess> servers, ScenarioRecord record)
    {
        var capable = new List<ServerProcess>();
        var refused = new List<string>();
        foreach (var server in servers)
        {
            string? error = server.TlsPort is null
                ? $"its build has no {ServerLaunch.TlsArg}"
                : ServerProcess.Probe(server.Url(scenario.Path, tls: true));
            if (error is null)
            {
                capable.Add(server);
            }
            else
            {
                refused.Add($"{server.Contender.Name} ({error})");
            }
        }
        if (capable.Count == 0)
        {
            NotRun(record, $"no server answered over TLS: {string.Join("; ", refused)}");
        }
        else if (refused.Count > 0)
        {
            record.Note = $"Left out (no https endpoint): {string.Join("; ", refused)}.";
        }
        return capable;
    }

    /// <summary>
    /// Sets the fixed rate: --rate, else half the baseline's plaintext-64 median (measured now
    /// if plaintext-64 was not run). With wrk, the pause per connection is calibrated once
    /// against the baseline server, and every contender is then offered the same schedule.
    /// </summary>
    private FixedRate? PlanFixedRate(Scenario scenario, ILoadTool tool, List<ServerProcess> servers, ScenarioRecord record)
    {
        var reference = servers.FirstOrDefault(s => s.Contender.Name == Contender.Baseline) ?? servers[0];
        double target;
        string source;
        if (options.Rate is double given)
        {
            target = given;
            source = "--rate";
        }
        else
        {
            double? median = Summary.Median(file.Runs
                .Where(r => r.Scenario == _place.RecordName(Scenario.RateReference) && r.Contender == reference.Contender.Name && r.Failure is null && r.Requests > 0)
                .Select(r => (double?)r.Rps));
            if (median is double m)
            {
                source = $"50 % of the {reference.Contender.Name} {Scenario.RateReference} median, {MarkdownReport.Rps(m)} req/s";
            }
            else
            {
                var plaintext = Scenario.Find(Scenario.RateReference)!;
                var plainTool = _tools.For(plaintext, out _)!;
                WarmUp(plaintext, plainTool, reference, rate: null);
                Say($"{_progress.Stamp()} {scenario.Name}: measuring {reference.Contender.Name} {plaintext.Name} for {options.DurationSeconds} s to set the rate");
                var r = Measure(plaintext, plainTool, reference, Spec(plaintext, reference, options.DurationSeconds, null), run: 0, options.PauseSeconds, countSyscalls: false);
                if (r.Failure is not null || r.Rps <= 0)
                {
                    NotRun(record, $"could not measure {reference.Contender.Name} {plaintext.Name} to set the rate: {r.Failure ?? "no requests"}");
                    return null;
                }
                m = r.Rps;
                source = $"50 % of {reference.Contender.Name} {plaintext.Name} measured just before, {MarkdownReport.Rps(m)} req/s";
            }
            if (reference.Contender.Name != Contender.Baseline)
            {
                source += $" ({Contender.Baseline} is not running)";
            }
            target = m / 2;
        }
        record.TargetRps = target;
        record.RateSource = source;

        if (tool is not Wrk)
        {
            record.Connections = scenario.Connections;
            return new FixedRate(target, scenario.Connections, DelayMs: null, RateRps: target);
        }

        int connections = (int)Math.Clamp(Math.Ceiling(target * FixedRateCycleMs / 1000), 16, 1024);
        double cycle = connections * 1000.0 / target; // ms per request per connection at the target
        double delay = cycle;
        for (int pass = 1; pass <= CalibrationPasses; pass++)
        {
            var pacing = new FixedRate(target, connections, delay, null);
            if (!_warm.Contains(reference.Pid))
            {
                WarmUp(scenario, tool, reference, pacing);
            }
            Say($"{_progress.Stamp()} {scenario.Name}: calibrating the pacing on {reference.Contender.Name}, pass {pass}/{CalibrationPasses}, {CalibrationSeconds} s " +
                $"({MarkdownReport.Rps(target)} req/s over {connections} connections, {delay:0.###} ms pause)");
            var probe = Measure(scenario, tool, reference, Spec(scenario, reference, CalibrationSeconds, pacing), run: 0, options.PauseSeconds, countSyscalls: false);
            _progress.Done(CalibrationSeconds);
            if (probe.Failure is not null || probe.Rps <= 0)
            {
                NotRun(record, $"calibrating the pacing failed: {probe.Failure ?? "no requests"}");
                return null;
            }
            if (Math.Abs(probe.Rps / target - 1) <= 0.03)
            {
                Say($"    {MarkdownReport.Rps(probe.Rps)} req/s: within 3 % of the target");
                break;
            }
            // Each connection's cycle = pause + response time + timer slack (wrk's timers have
            // millisecond resolution): take the measured overhead off the pause.
            double overheadMs = connections * 1000.0 / probe.Rps - delay;
            delay = Math.Max(0, cycle - overheadMs);
            Say($"    {MarkdownReport.Rps(probe.Rps)} req/s; next pause {delay:0.###} ms");
            if (delay == 0)
            {
                record.Note = $"The target is out of reach with {connections} connections (each cycle's overhead is {overheadMs:0.00} ms): the connections send without pausing.";
                break;
            }
        }
        record.Connections = connections;
        record.DelayMs = delay;
        return new FixedRate(target, connections, delay, null);
    }

    private LoadSpec Spec(Scenario scenario, ServerProcess server, int seconds, FixedRate? rate) => new(
        server.Url(scenario.Path, h2: scenario.Kind == ScenarioKind.H2c, tls: scenario.Tls),
        rate?.Connections ?? scenario.Connections,
        _place.LoadThreads,
        seconds,
        scenario.PipelineDepth,
        scenario.Streams,
        rate?.DelayMs,
        rate?.RateRps,
        Headers: scenario.Kind == ScenarioKind.Grpc ? GrpcUnary.Headers : scenario.Header is null ? null : [scenario.Header],
        Script: scenario.Script,
        ScriptEnvironment: scenario.ScriptEnvironment,
        BodyFile: scenario.Kind == ScenarioKind.Grpc ? GrpcPayloadFile() : null);

    // ---- one run -----------------------------------------------------------------------------

    /// <summary>
    /// One load run against one server: the load tool pinned to the load CPUs (under perf when
    /// counting syscalls; not pinned in the defaults pass), with the server's CPU time and both
    /// CPU sets' busy time read around it.
    /// </summary>
    private RunRecord Measure(Scenario scenario, ILoadTool tool, ServerProcess server, LoadSpec spec, int run, double pauseSeconds, bool countSyscalls)
    {
        var invocation = tool.Prepare(spec);
        IReadOnlyList<string> command = invocation.Command;
        string? perfOutput = null;
        if (countSyscalls && _syscalls is not null)
        {
            perfOutput = Path.Combine(Path.GetTempPath(), $"uring-perf-{Environment.ProcessId}-{Guid.NewGuid():N}.csv");
            command = _syscalls.Wrap(server.Pid, perfOutput, command);
        }
        IReadOnlyList<string> full = _place.OnLoadCpus(ChildCpu.Wrap(command));

        var record = new RunRecord
        {
            Scenario = _place.RecordName(scenario),
            Contender = server.Contender.Name,
            Run = run,
            Tool = tool.Name,
            Command = [.. full],
        };

        // The pause lets the previous run's connections wind down, and shows what else the server CPU is doing.
        if (pauseSeconds > 0)
        {
            var coresBefore = CpuTime.Cores(_place.ServerCpuList);
            long serversBefore = ServersTicks();
            Thread.Sleep(TimeSpan.FromSeconds(pauseSeconds));
            var coresAfter = CpuTime.Cores(_place.ServerCpuList);
            long serversTicks = ServersTicks() - serversBefore;
            long coreTicks = coresAfter.Total - coresBefore.Total;
            if (coreTicks > 0)
            {
                double servers = 100.0 * serversTicks / coreTicks;
                record.ServersCpuBeforePercent = servers;
                record.OtherLoadBeforePercent = Math.Max(0, coresAfter.BusyPercentSince(coresBefore)!.Value - servers);
            }
        }

        record.StartedUtc = DateTime.UtcNow;
        long? ticksBefore = CpuTime.ProcessTicks(server.Pid);
        var serverBefore = CpuTime.Cores(_place.ServerCpuList);
        var loadBefore = CpuTime.Cores(_place.LoadCpuList);
        var clock = Stopwatch.StartNew();
        var (result, loadToolCpu) = ChildCpu.Split(ChildProcesses.Run(full[0], full.Skip(1), TimeSpan.FromSeconds(spec.DurationSeconds + 30)));
        double wall = clock.Elapsed.TotalSeconds;
        long? ticksAfter = CpuTime.ProcessTicks(server.Pid);
        var serverAfter = CpuTime.Cores(_place.ServerCpuList);
        var loadAfter = CpuTime.Cores(_place.LoadCpuList);

        var load = invocation.Parse(result);
        long? syscalls = perfOutput is null ? null : SyscallCounter.ReadCount(perfOutput);

        record.Requests = load.Requests;
        record.Rps = load.Rps;
        record.P50Us = scenario.HasLatency ? load.P50Us : null;
        record.P99Us = scenario.HasLatency ? load.P99Us : null;
        record.Non2xx = load.Non2xx;
        record.SocketErrors = load.SocketErrors;
        record.ErrorDetail = load.ErrorDetail;
        record.Failure = load.Failure;
        record.ClientCpuUsPerRequest = load.ClientCpuSeconds is double clientCpu && load.Requests > 0 ? clientCpu * 1e6 / load.Requests : null;
        record.WallSeconds = wall;
        record.ToolSeconds = load.DurationSeconds;
        record.ServerCoresBusyPercent = serverAfter.BusyPercentSince(serverBefore);
        record.LoadCoresBusyPercent = loadAfter.BusyPercentSince(loadBefore);
        record.LoadToolCpuPercent = loadToolCpu is double cpu ? 100 * cpu / wall / _place.LoadCpuList.Count : null;
        if (ticksBefore is long t0 && ticksAfter is long t1)
        {
            long ticks = t1 - t0;
            double cpuSeconds = (double)ticks / CpuTime.TicksPerSecond;
            record.ServerCpuTicks = ticks;
            record.ServerProcessCpuPercent = 100 * cpuSeconds / wall;
            record.CpuUsPerRequest = load.Requests > 0 ? cpuSeconds * 1e6 / load.Requests : null;
        }
        if (syscalls is long n)
        {
            record.Syscalls = n;
            record.SyscallsPerRequest = load.Requests > 0 ? (double)n / load.Requests : null;
        }
        if (!server.IsAlive)
        {
            record.Failure ??= "the server exited during the run (see its log)";
            MarkStopped(server);
        }
        return record;
    }

    /// <summary>CPU ticks used so far by all running contender servers.</summary>
    private long ServersTicks() => _servers.Sum(s => CpuTime.ProcessTicks(s.Pid) ?? 0);

    private void MarkStopped(ServerProcess server)
    {
        if (!_records.TryGetValue(server, out var record))
        {
            return; // a fresh server of the idle scenario: its run records the failure
        }
        if (record.Error is null || !record.Error.Contains("exited", StringComparison.Ordinal))
        {
            record.Error = (record.Error is null ? "" : record.Error + "; ") + "the server exited during the benchmark (see " + record.LogFile + ")";
            Say($"    ⚠ {server.Contender.Name}: {record.Error}");
        }
    }

    private static string Describe(RunRecord r)
    {
        var parts = new List<string> { $"{MarkdownReport.Rps(r.Rps)} req/s" };
        if (r.P50Us is not null)
        {
            parts.Add($"p50 {MarkdownReport.Latency(r.P50Us)}, p99 {MarkdownReport.Latency(r.P99Us)}");
        }
        parts.Add($"CPU {MarkdownReport.Num(r.CpuUsPerRequest, "0.00")} µs/req ({MarkdownReport.Num(r.ServerProcessCpuPercent, "0")} % of a core)");
        if (r.SyscallsPerRequest is not null)
        {
            parts.Add($"{MarkdownReport.Num(r.SyscallsPerRequest, "0.00")} syscalls/req");
        }
        parts.Add($"load tool {MarkdownReport.Num(r.LoadToolCpuPercent, "0")} % of its CPU (CPU busy {MarkdownReport.Num(r.LoadCoresBusyPercent, "0")} %)");
        if (r.TargetRps is double target)
        {
            parts.Add($"target {MarkdownReport.Rps(target)} req/s");
        }
        if (r.HasErrors)
        {
            parts.Add($"⚠ {r.ErrorDetail}");
        }
        return string.Join(", ", parts);
    }

    /// <summary>Stops every server.</summary>
    public void Dispose() => StopServers();
}
