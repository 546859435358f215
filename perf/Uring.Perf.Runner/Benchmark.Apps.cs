using Uring.Perf.Runner.Load;
using Uring.Perf.Runner.Processes;
using Uring.Perf.Runner.Results;

namespace Uring.Perf.Runner;

// The app scenarios: proxy-64 (the YARP proxy in front of the sample app) and grpc-unary-64 (the
// gRPC app). Each starts its own servers, one per contender, measures them like the sample app's,
// and stops them.
internal sealed partial class Benchmark
{
    /// <summary>
    /// A server app the runner starts per contender. <paramref name="LogPrefix"/>: its log files'
    /// names ("server-uring.log"); <paramref name="Probe"/>: its readiness check (null: GET /plaintext).
    /// </summary>
    private sealed record AppUnderTest(string Name, string Project, string Dll, string What, string LogPrefix, Func<string, string?>? Probe);

    /// <summary>The sample app: the contenders of every other scenario, and proxy-64's backend.</summary>
    private static readonly AppUnderTest s_sample = new("Uring.Perf.App", AppProject, AppDll, "the app", "server", Probe: null);

    private static readonly AppUnderTest s_proxy = new("Uring.Proxy.App",
        "perf/Uring.Proxy.App/Uring.Proxy.App.csproj", "perf/Uring.Proxy.App/bin/Release/net10.0/Uring.Proxy.App.dll", "the proxy app", "proxy",
        Probe: null); // GET /plaintext through the proxy: the backend's "Hello, World!" proves the route too

    private static readonly AppUnderTest s_grpc = new("Uring.Grpc.App",
        "perf/Uring.Grpc.App/Uring.Grpc.App.csproj", "perf/Uring.Grpc.App/bin/Release/net10.0/Uring.Grpc.App.dll", "the gRPC app", "grpc",
        GrpcUnary.Probe);

    private string? _grpcPayload;

    private static AppUnderTest? AppOf(Scenario scenario) => scenario.Kind switch
    {
        ScenarioKind.Proxy => s_proxy,
        ScenarioKind.Grpc => s_grpc,
        _ => null,
    };

    private static IEnumerable<AppUnderTest> AppsOf(IEnumerable<Scenario> scenarios) =>
        scenarios.Select(AppOf).OfType<AppUnderTest>().Distinct();

    /// <summary>h2load's request body for grpc-unary-64 (<see cref="GrpcUnary.Frame"/>), written once into the results folder.</summary>
    private string GrpcPayloadFile()
    {
        if (_grpcPayload is null)
        {
            _grpcPayload = Path.Combine(runDir, "grpc-unary-call.bin");
            File.WriteAllBytes(_grpcPayload, GrpcUnary.Frame);
        }
        return _grpcPayload;
    }

    private void RunAppScenario(Scenario scenario, ScenarioRecord record, ILoadTool tool)
    {
        var app = AppOf(scenario)!;
        string dotnet = ChildProcesses.Which("dotnet") ?? throw new BenchmarkException("dotnet is not on PATH");
        ServerProcess? backend = null;
        var servers = new List<ServerProcess>();
        try
        {
            IReadOnlyList<string>? extraArgs = null;
            if (scenario.Kind == ScenarioKind.Proxy)
            {
                backend = StartBackend(dotnet, out string? error);
                if (backend is null)
                {
                    NotRun(record, $"the backend (Uring.Perf.App on Sockets) did not start: {error}");
                    return;
                }
                extraArgs = ["--backend", backend.Url("")];
                record.Note = _place.Unpinned
                    ? "Nothing pinned: proxy, backend and load tool share the machine's CPUs."
                    : $"The proxy (the measured process) on CPU {_place.ServerCpus} with --rings {_place.Rings}; the backend (Uring.Perf.App --transport sockets --rings {_place.LoadCpuList.Count}, " +
                      $"the same process for every row) and the load tool on CPU {_place.LoadCpus}: the load CPU carries the backend's work too, so req/s is capped by it where it is busy.";
            }
            else
            {
                record.Note = $"The call's body is {Path.GetFileName(GrpcPayloadFile())} in this folder (gRPC frame of a {GrpcUnary.PayloadBytes}-byte Message); " +
                    "before its load each server answered it once with grpc-status 0 and the echo (h2load itself counts only HTTP statuses).";
            }

            foreach (var contender in options.Contenders)
            {
                if (Stopping)
                {
                    return;
                }
                var server = StartContender(contender, dotnet, app, NextPort(), h2Port: null, extraArgs: extraArgs);
                if (server is not null)
                {
                    servers.Add(server);
                }
            }
            if (servers.Count == 0)
            {
                if (!Stopping)
                {
                    NotRun(record, $"no contender of {app.Name} started (see its logs in {runDir})");
                }
                return;
            }
            MeasureContenders(scenario, record, tool, servers, rate: null);
        }
        finally
        {
            foreach (var server in servers)
            {
                _servers.Remove(server);
                _records.Remove(server);
                server.Dispose();
            }
            backend?.Dispose();
        }
    }

    /// <summary>proxy-64's backend: the sample app on Kestrel's Sockets transport, on the load CPUs (not pinned in the defaults pass).</summary>
    private ServerProcess? StartBackend(string dotnet, out string? error)
    {
        var sockets = Contender.Find(Contender.Baseline, baseBuild: null)!;
        int port = NextPort();
        int? rings = _place.Unpinned ? null : _place.LoadCpuList.Count;
        string log = Path.Combine(runDir, $"proxy-backend{(_place.Unpinned ? "-defaults" : "")}.log");
        var launch = new ServerLaunch(sockets, dotnet, Path.Combine(repoRoot, s_sample.Dll), _place.LoadCpus, rings, port);
        Say($"==> starting the proxy's backend: {(_place.LoadCpus is null ? "" : $"taskset -c {_place.LoadCpus} ")}dotnet Uring.Perf.App.dll {string.Join(' ', launch.AppArgs)}");
        var backend = ServerProcess.Start(launch, log, out error);
        if (backend is not null)
        {
            Say($"    listening on :{port}, pid {backend.Pid}");
        }
        return backend;
    }
}
