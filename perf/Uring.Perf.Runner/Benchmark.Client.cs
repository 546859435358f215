using Uring.Perf.Runner.Load;
using Uring.Perf.Runner.Processes;
using Uring.Perf.Runner.Results;

namespace Uring.Perf.Runner;

// The client scenario: the same server, loaded by HttpClient with each handler in turn.
internal sealed partial class Benchmark
{
    private double ClientPlannedSeconds()
    {
        int n = ClientHandler.All.Count;
        double perRun = options.DurationSeconds + HttpClientLoad.ClientWarmupSeconds + options.PauseSeconds + RunOverheadSeconds + 1; // + process start
        return n * options.ScenarioWarmupSeconds + options.Runs * n * perRun;
    }

    /// <summary>
    /// Runs Uring.Perf.Client with each <see cref="ClientHandler"/>, alternating run by run, against
    /// the baseline server (or the first running one). A row's CPU is the client's own.
    /// </summary>
    private void RunClientScenario(Scenario scenario, ScenarioRecord record, ILoadTool tool, List<ServerProcess> servers)
    {
        var server = servers.FirstOrDefault(s => s.Contender.Name == Contender.Baseline) ?? servers[0];
        record.Supported = true;
        record.ClientSide = true;
        record.Note = (_place.Unpinned
                ? $"Server: the {server.Contender.Name} contender, not pinned; the client is not pinned either, "
                : $"Server: the {server.Contender.Name} contender (pinned to CPU {_place.ServerCpus}); the client runs pinned to CPU {_place.LoadCpus}, ") +
            $"one process per run with {HttpClientLoad.ClientWarmupSeconds} s of load before its measured window. " +
            string.Join("; ", ClientHandler.All.Select(h => $"{h.Name} = {h.Description}")) + ".";
        if (server.Contender.Name != Contender.Baseline)
        {
            record.Note += $" ({Contender.Baseline} is not running.)";
        }

        Say("");
        Say($"==> {record.Name}: {record.Description}; {ClientHandler.All.Count} handlers x {options.Runs} runs x {options.DurationSeconds} s against {server.Contender.Name}");

        foreach (var handler in ClientHandler.All)
        {
            int seconds = _warm.Contains(server.Pid) ? options.ScenarioWarmupSeconds : options.WarmupSeconds;
            if (seconds == 0 || Stopping)
            {
                continue;
            }
            Say($"{_progress.Stamp()} {scenario.Name}: warming up with the {handler.Name} client for {seconds} s");
            var r = Measure(scenario, tool, server, ClientSpec(scenario, server, handler, seconds), run: 0, pauseSeconds: 0, countSyscalls: false);
            Say(r.Failure is not null || r.Requests == 0
                ? $"    ⚠ warm-up with the {handler.Name} client: {r.Failure ?? "no request completed"}"
                : $"    warm-up: {MarkdownReport.Rps(r.Rps)} req/s, client {MarkdownReport.Num(r.ClientCpuUsPerRequest, "0.00")} µs CPU/req");
            _warm.Add(server.Pid);
            _progress.Done(seconds);
        }

        for (int run = 1; run <= options.Runs; run++)
        {
            foreach (var handler in InRunOrder(ClientHandler.All, run, h => h.Name))
            {
                if (Stopping || !server.IsAlive)
                {
                    return;
                }
                Say($"{_progress.Stamp()} {record.Name} run {run}/{options.Runs}: {handler.Name} client ({options.DurationSeconds} s)");
                var result = Measure(scenario, tool, server, ClientSpec(scenario, server, handler, options.DurationSeconds), run, options.PauseSeconds, countSyscalls: false);
                if (Stopping)
                {
                    return;
                }
                result.Contender = handler.Name;
                // The server's CPU over the run spans the client's start-up and warm-up too: not per measured request.
                result.CpuUsPerRequest = null;
                file.Runs.Add(result);
                Say($"    {MarkdownReport.Rps(result.Rps)} req/s, p50 {MarkdownReport.Latency(result.P50Us)}, p99 {MarkdownReport.Latency(result.P99Us)}, " +
                    $"client CPU {MarkdownReport.Num(result.ClientCpuUsPerRequest, "0.00")} µs/req" + (result.HasErrors ? $", ⚠ {result.ErrorDetail}" : ""));
                if (result.Failure is not null)
                {
                    Say($"    ⚠ {result.Failure}");
                }
                _progress.Done(options.DurationSeconds + HttpClientLoad.ClientWarmupSeconds + options.PauseSeconds + RunOverheadSeconds + 1);
            }
        }
    }

    private LoadSpec ClientSpec(Scenario scenario, ServerProcess server, ClientHandler handler, int seconds) =>
        Spec(scenario, server, seconds, rate: null) with { ClientHandler = handler.Name };
}
