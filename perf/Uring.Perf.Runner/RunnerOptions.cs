using System.Globalization;

namespace Uring.Perf.Runner;

/// <summary>The runner's command line. Every value has a default; <c>--quick</c> changes the defaults only.</summary>
internal sealed class RunnerOptions
{
    public const string Usage = """
        usage: ./build.sh bench [options]

        Starts every contender (a Uring.Perf.App process each, pinned to the server CPU), warms
        each up, then measures them in turn, run by run (A, B, C, A, B, C, ...), for each scenario.
        Writes perf/results/<timestamp>/{report.md,runs.json,chart.svg} and copies them to
        perf/results/latest/ (a --quick run does not replace a full run there). The report gives
        each contender's ratios to sockets and, per scenario, uring / uring-epoll (the io_uring
        engine against the epoll engine: req/s and CPU µs per request).

          --contenders LIST   comma-separated; default sockets,uring,uring-epoll.
                              Known: sockets, uring, uring-epoll, sockets-inline, uring-inline; with
                              --baseline-build also any of them + "@base" (e.g. uring@base).
          --baseline-build DIR  A/B this build against another checkout of this repo, already built
                              with `dotnet build Uring.Transport.sln -c Release` there (DIR/perf/*/bin/
                              Release/net10.0/*.dll are run as they are). Each chosen uring contender
                              gets a twin NAME@base (uring@base, uring-epoll@base) started from DIR's
                              app with the same arguments, less any option that app's --help does not
                              list (an older build predates newer ones; a TLS scenario leaves out a
                              server without its https endpoint). The twins are contenders like the
                              others: warmed up the same, interleaved run by run, each right after
                              the contender it is compared with. The report adds, per scenario and
                              pass, the paired ratio new / base: per run i, NAME's figure over
                              NAME@base's, then the median over the runs, how many runs were below
                              1, and the smallest and largest (CPU µs/req and req/s; idle-10k: KiB
                              per connection, and after a full GC). When --contenders names a
                              NAME@base itself, no twin is added: the list is taken as it is, e.g.
                              --contenders uring,uring@base,uring-epoll,uring-epoll@base.
          --inline            add sockets-inline and uring-inline to the default contenders.
          --scenarios LIST    comma-separated; default all, in this order:
                                plaintext-64, plaintext-256, plaintext-pipelined-16, json-64,
                                close-64        GET /plaintext with "Connection: close" (wrk -H),
                                                64 connections: a new connection per request;
                                                CPU µs/req (accept + request + close) is the figure.
                                download-1m-16  GET /bytes?size=1048576 (1 MiB responses), 16 conns.
                                upload-1m-16    POST /upload, 1 MiB bodies (perf/wrk/upload.lua,
                                                UPLOAD_BYTES), 16 connections.
                                tls-64          GET /plaintext over TLS, 64 keep-alive connections:
                                                Kestrel terminates TLS on each server's https
                                                endpoint (the app's --tls: a self-signed ECDSA P-256
                                                certificate made at start-up, HTTP/1.1 only, ALPN
                                                http/1.1); wrk https://, TLS 1.3, no certificate check.
                                tls-close-64    the same with "Connection: close": a new TCP connection
                                                and TLS handshake per request. wrk offers each new
                                                connection the previous one's session and the server
                                                issues TLS 1.3 tickets, so these are resumed handshakes
                                                (PSK + ECDHE) after each connection's first, full one.
                                                A server whose build has no --tls (a baseline build
                                                older than it) is left out of both, with a note.
                                h2-64, fixed-rate, client-64,
                                idle-10k        idle keep-alive memory: per contender and run, a
                                                fresh server (fd limit raised to 20000; pinned like
                                                the others in the pinned pass), 2 s of wrk warm-up,
                                                then 10,000 connections opened from the runner itself,
                                                one GET each, left idle; reports the server's RSS
                                                growth (VmRSS, settled) in KiB per connection (and
                                                MiB in all) in a table of its own, not the req/s one.
                                                Next to it, a GC-normalized figure: the servers run
                                                with --gc-endpoint, and after each settled read the
                                                runner POSTs /gc once (on an extra connection): a
                                                full compacting GC in aggressive mode; the RSS read
                                                once settled again gives "KiB per connection after
                                                a full GC", and the managed heap size the app
                                                answers gives "managed heap KiB per connection".
                              close-64, upload-1m-16 and the tls ones use wrk whatever --tool says (-H,
                              a Lua script, https://). These and download-1m-16 keep the default runs and
                              duration: even the 1 MiB ones complete thousands of requests per 10 s run.
                              client-64 loads the sockets server with HttpClient (Uring.Perf.Client),
                              default SocketsHttpHandler vs UseUringTransport(), and reports the
                              client's requests/s and CPU µs per request.
                                proxy-64        GET /plaintext through the YARP proxy (perf/Uring.Proxy.App)
                                                to the sample app on Sockets, 64 connections (wrk or
                                                --tool). The rows are the proxy's transport, both of
                                                its sides; the proxy runs on the server CPU and is the
                                                process measured, the backend (one for every row,
                                                --rings = load CPUs) runs with the load tool on the
                                                load CPU.
                                grpc-unary-64   gRPC unary calls (perf/Uring.Grpc.App, h2c), h2load
                                                -c4 -m16 posting one fixed call (-d, the gRPC frame
                                                written into the results folder); each server first
                                                answers it once with grpc-status 0.
                              Both start their own servers (one per contender, fresh processes: each
                              gets the full --warmup) and stop them after the scenario.
                              Time, 3 contenders, 5 runs x 10 s: each load scenario ~3 min (plus
                              1.5 min of first warm-up), idle-10k ~2.5 min (15 fresh servers, ~9 s
                              each), proxy-64 and grpc-unary-64 ~4.5 min each (their own first
                              warm-ups): ~50 min for all fifteen; --defaults doubles it. Pick
                              --scenarios for a shorter run.
          --runs N            measured runs per contender and scenario. Default 5.
          --duration S        seconds per run. Default 10.
          --warmup S          load on each contender's first scenario before measuring. Default 30
                              (.NET needs ~20 s under load to reach steady state).
          --scenario-warmup S load before each later scenario on an already warm contender. Default 5.
          --pause S           idle seconds between runs. Default 1.
          --quick             plaintext-64 only, 3 runs of 5 s, 10 s warm-up, 2 s scenario warm-up.
          --server-cpu LIST   taskset CPU list for the servers. Default 0.
          --load-cpu LIST     taskset CPU list for the load generator. Default 1.
          --rings N           uring RingCount and sockets IOQueueCount. Default: the number of
                              server CPUs (1 when the server is pinned to one CPU).
          --defaults          after the pinned pass, run the chosen scenarios again in a second
                              pass with the libraries' defaults: nothing pinned (no taskset for the
                              servers or the load tool), no --rings (uring RingCount = CPU count,
                              Sockets' own IOQueueCount), the load tool with one thread per CPU
                              (wrk -t2 on 2 CPUs). The report shows each scenario's pinned table,
                              then its "defaults (unpinned)" table (runs.json: "<name>@defaults"),
                              and both rows in the summary. Doubles the run time.
          --defaults-only     the defaults pass only (no pinned pass).
          --idle-connections N  idle-10k's connection count. Default 10000 (each is an fd in the
                              server and one in the runner: the runner and the servers raise their
                              RLIMIT_NOFILE soft limit to 20000, or to the hard limit if lower).
          --base-port P       first port; contenders take the next free ports. Default 5101.
          --tool T            auto | wrk | bombardier. auto = bombardier when on PATH, else wrk.
                              Pipelined runs always use wrk; h2-64 uses h2load.
          --rate RPS          fixed-rate target. Default: 50% of the sockets plaintext-64 median.
          --no-syscalls       do not count syscalls with perf (counting costs the server a little).
          --no-h2c-endpoint   do not give each server its second, HTTP/2-only cleartext endpoint
                              (added through Kestrel's configuration, Kestrel__Endpoints__*
                              environment variables, for h2-64). Without it, h2-64 runs only if
                              the app's own endpoint speaks h2c; the app's Http1AndHttp2 one does not.
          --no-install        do not apt-get install missing load tools (wrk, nghttp2-client, linux-perf).
          --skip-build        use the apps as already built (perf/*/bin/Release).
          --out DIR           results folder. Default perf/results.
          --render DIR        only rewrite DIR/report.md and DIR/chart.svg from DIR/runs.json.
          -h, --help          this text.
        """;

    public List<Contender> Contenders { get; private set; } = [];
    public List<Scenario> Scenarios { get; private set; } = [];
    public int Runs { get; private set; } = 5;
    public int DurationSeconds { get; private set; } = 10;
    public int WarmupSeconds { get; private set; } = 30;
    public int ScenarioWarmupSeconds { get; private set; } = 5;
    public double PauseSeconds { get; private set; } = 1;
    public bool Quick { get; private set; }
    public string ServerCpus { get; private set; } = "0";
    public string LoadCpus { get; private set; } = "1";
    public int Rings { get; private set; }
    public int BasePort { get; private set; } = 5101;
    public string Tool { get; private set; } = "auto";
    public double? Rate { get; private set; }
    public bool CountSyscalls { get; private set; } = true;
    public bool H2cEndpoint { get; private set; } = true;
    public bool Install { get; private set; } = true;
    public bool SkipBuild { get; private set; }
    public string? OutDir { get; private set; }

    /// <summary>--baseline-build: the other checkout (full path) whose apps the @base contenders run; null: none.</summary>
    public string? BaselineBuild { get; private set; }

    /// <summary>The passes to run: the pinned one (the method) and/or the defaults one (--defaults).</summary>
    public IReadOnlyList<Placement> Passes { get; private set; } = [];

    /// <summary>--defaults / --defaults-only.</summary>
    public bool DefaultsPass { get; private set; }
    public bool PinnedPass { get; private set; } = true;

    public int IdleConnections { get; private set; } = Scenario.IdleDefaultConnections;

    /// <summary>--render: the results folder whose report and chart are to be rewritten; nothing is run.</summary>
    public string? RenderDir { get; private set; }

    /// <summary>The CPUs in <see cref="ServerCpus"/> and <see cref="LoadCpus"/>, expanded.</summary>
    public IReadOnlyList<int> ServerCpuList { get; private set; } = [0];
    public IReadOnlyList<int> LoadCpuList { get; private set; } = [1];

    /// <summary>Parses the command line; null means help was asked for. Throws ArgumentException on bad input.</summary>
    public static RunnerOptions? Parse(string[] args)
    {
        var o = new RunnerOptions();
        var given = new HashSet<string>(StringComparer.Ordinal);
        bool inline = false;
        string? contenders = null;
        string? scenarios = null;

        var line = new CommandLine(args);
        while (line.MoveNext())
        {
            given.Add(line.Name);
            switch (line.Name)
            {
                case "-h":
                case "--help":
                    return null;
                case "--contenders": contenders = line.Value(); break;
                case "--inline": line.Flag(); inline = true; break;
                case "--scenarios": scenarios = line.Value(); break;
                case "--runs": o.Runs = line.Int(1); break;
                case "--duration": o.DurationSeconds = line.Int(1); break;
                case "--warmup": o.WarmupSeconds = line.Int(0); break;
                case "--scenario-warmup": o.ScenarioWarmupSeconds = line.Int(0); break;
                case "--pause": o.PauseSeconds = line.Number(0); break;
                case "--quick": line.Flag(); o.Quick = true; break;
                case "--server-cpu": o.ServerCpus = line.Value(); break;
                case "--load-cpu": o.LoadCpus = line.Value(); break;
                case "--rings": o.Rings = line.Int(1); break;
                case "--defaults": line.Flag(); o.DefaultsPass = true; break;
                case "--defaults-only": line.Flag(); o.DefaultsPass = true; o.PinnedPass = false; break;
                case "--idle-connections":
                    o.IdleConnections = line.Int(1);
                    if (o.IdleConnections > 60_000)
                    {
                        throw new ArgumentException("--idle-connections: at most 60000 (one local port each, all from 127.0.0.1)");
                    }
                    break;
                case "--base-port": o.BasePort = line.Int(1024); break;
                case "--tool":
                    o.Tool = line.Value();
                    if (o.Tool is not ("auto" or "wrk" or "bombardier"))
                    {
                        throw new ArgumentException($"--tool must be auto, wrk or bombardier, got '{o.Tool}'");
                    }
                    break;
                case "--rate": o.Rate = line.Number(1); break;
                case "--no-syscalls": line.Flag(); o.CountSyscalls = false; break;
                case "--h2c-endpoint": line.Flag(); o.H2cEndpoint = true; break; // the default; kept for old command lines
                case "--no-h2c-endpoint": line.Flag(); o.H2cEndpoint = false; break;
                case "--no-install": line.Flag(); o.Install = false; break;
                case "--skip-build": line.Flag(); o.SkipBuild = true; break;
                case "--out": o.OutDir = line.Value(); break;
                case "--baseline-build":
                    o.BaselineBuild = Path.GetFullPath(line.Value());
                    if (!Directory.Exists(o.BaselineBuild))
                    {
                        throw new ArgumentException($"--baseline-build: {o.BaselineBuild} is not a folder");
                    }
                    break;
                case "--render": o.RenderDir = line.Value(); break;
                default:
                    throw line.Unknown();
            }
        }

        if (o.Quick)
        {
            // --quick sets defaults; options given explicitly still win.
            if (!given.Contains("--runs")) { o.Runs = 3; }
            if (!given.Contains("--duration")) { o.DurationSeconds = 5; }
            if (!given.Contains("--warmup")) { o.WarmupSeconds = 10; }
            if (!given.Contains("--scenario-warmup")) { o.ScenarioWarmupSeconds = 2; }
            scenarios ??= Scenario.RateReference;
        }

        o.Contenders = contenders is null
            ? [.. Contender.Defaults(inline)]
            : [.. SplitList(contenders).Select(n => Contender.Find(n, o.BaselineBuild) ?? throw new ArgumentException(
                $"unknown contender '{n}' (known: {string.Join(", ", Contender.All.Select(c => c.Name))}, and NAME{Contender.BaseSuffix} with --baseline-build)"))];
        if (o.BaselineBuild is string baseBuild && !o.Contenders.Any(c => c.BaseBuild is not null))
        {
            // Each twin right after its counterpart: the pair's runs are next to each other in time.
            o.Contenders = [.. o.Contenders.SelectMany(c => c.ExpectedEngine is null ? [c] : new[] { c, c.OnBaseBuild(baseBuild) })];
            if (!o.Contenders.Any(c => c.BaseBuild is not null))
            {
                throw new ArgumentException("--baseline-build: no uring contender chosen to compare (name one, or NAME@base in --contenders)");
            }
        }
        o.Scenarios = scenarios is null
            ? [.. Scenario.All]
            : [.. SplitList(scenarios).Select(n => Scenario.Find(n) ?? throw new ArgumentException(
                $"unknown scenario '{n}' (known: {string.Join(", ", Scenario.All.Select(s => s.Name))})"))];
        // Run scenarios in the catalogue's order: fixed-rate needs plaintext-64's result first.
        o.Contenders = [.. o.Contenders.Distinct()];
        o.Scenarios = [.. Scenario.All.Where(o.Scenarios.Contains)
            .Select(sc => sc.Kind == ScenarioKind.Idle ? sc with { Connections = o.IdleConnections } : sc)];
        if (o.Contenders.Count == 0 || o.Scenarios.Count == 0)
        {
            throw new ArgumentException("nothing to run: no contender or no scenario selected");
        }

        o.ServerCpuList = ParseCpuList("--server-cpu", o.ServerCpus);
        o.LoadCpuList = ParseCpuList("--load-cpu", o.LoadCpus);
        int available = Environment.ProcessorCount;
        foreach (int cpu in o.ServerCpuList.Concat(o.LoadCpuList))
        {
            if (cpu >= available)
            {
                throw new ArgumentException($"CPU {cpu} does not exist here (this machine has {available})");
            }
        }
        if (o.Rings == 0)
        {
            o.Rings = o.ServerCpuList.Count;
        }
        o.Passes = [.. (o.PinnedPass ? new[] { Placement.Pinned(o) } : []), .. (o.DefaultsPass ? new[] { Placement.Defaults() } : [])];
        return o;
    }

    private static IEnumerable<string> SplitList(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Expands a taskset-style list ("0", "0,2", "2-3").</summary>
    private static List<int> ParseCpuList(string option, string text)
    {
        var cpus = new SortedSet<int>();
        foreach (string part in SplitList(text))
        {
            string[] range = part.Split('-');
            if (range.Length is < 1 or > 2
                || !int.TryParse(range[0], NumberStyles.None, CultureInfo.InvariantCulture, out int first)
                || !int.TryParse(range[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int last)
                || last < first)
            {
                throw new ArgumentException($"{option}: '{text}' is not a CPU list like 0 or 0,2 or 2-3");
            }
            for (int cpu = first; cpu <= last; cpu++)
            {
                cpus.Add(cpu);
            }
        }
        if (cpus.Count == 0)
        {
            throw new ArgumentException($"{option} is empty");
        }
        return [.. cpus];
    }
}
