using System.Globalization;
using System.Text.Json;
using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Load;

/// <summary>
/// bombardier (codesenberg/bombardier, not Debian's game of the same name): closed-loop
/// HTTP/1.1 and, with --rate, a fixed total rate. Results come from its JSON report
/// (<c>-p r -o json -l</c>; latencies in microseconds).
/// </summary>
internal sealed class Bombardier(string path, string version) : ILoadTool
{
    public string Name => "bombardier";

    public string Version { get; } = version;

    /// <summary>The tool on PATH, if it is the HTTP benchmarking one.</summary>
    public static Bombardier? Find()
    {
        string? path = ChildProcesses.Which("bombardier");
        if (path is null || path.StartsWith("/usr/games/", StringComparison.Ordinal))
        {
            return null;
        }
        var r = ChildProcesses.Run(path, ["--version"], TimeSpan.FromSeconds(5));
        string text = (r.StdOut + r.StdErr).Trim();
        return text.Contains("bombardier version", StringComparison.Ordinal) ? new Bombardier(path, text.Split('\n')[0]) : null;
    }

    public LoadInvocation Prepare(LoadSpec spec)
    {
        if (spec.PipelineDepth > 1 || spec.DelayMs is not null || spec.Headers is { Count: > 0 } || spec.BodyFile is not null || spec.Script is not null)
        {
            throw new InvalidOperationException("bombardier neither pipelines nor paces by delay, and the runner gives it no header or script (those scenarios use wrk)");
        }
        var args = new List<string>
        {
            path,
            "-c", spec.Connections.ToString(CultureInfo.InvariantCulture),
            "-d", $"{spec.DurationSeconds.ToString(CultureInfo.InvariantCulture)}s",
            "-l", "-p", "r", "-o", "json",
        };
        if (spec.RateRps is double rate)
        {
            args.Add("--rate");
            args.Add(Math.Round(rate).ToString(CultureInfo.InvariantCulture));
        }
        args.Add(spec.Url);
        return new LoadInvocation(args, Parse);
    }

    private static LoadResult Parse(CommandResult result)
    {
        int start = result.StdOut.IndexOf('{');
        if (start < 0)
        {
            return LoadResult.Failed($"bombardier exited with {result.ExitCode} without a report: {result.Tail(5)}");
        }
        try
        {
            using var doc = JsonDocument.Parse(result.StdOut[start..]);
            var r = doc.RootElement.GetProperty("result");
            long Count(string name) => r.TryGetProperty(name, out var v) ? v.GetInt64() : 0;
            long ok = Count("req1xx") + Count("req2xx") + Count("req3xx");
            long non2xx = Count("req4xx") + Count("req5xx") + Count("others");
            double seconds = r.GetProperty("timeTakenSeconds").GetDouble();

            long errors = 0;
            var details = new List<string>();
            if (r.TryGetProperty("errors", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var e in list.EnumerateArray())
                {
                    long n = e.GetProperty("count").GetInt64();
                    errors += n;
                    details.Add($"{e.GetProperty("description").GetString()}: {n}");
                }
            }
            if (non2xx > 0)
            {
                details.Add($"non-2xx/3xx responses: {non2xx}");
            }

            double? Latency(string p) =>
                r.TryGetProperty("latency", out var lat) && lat.TryGetProperty("percentiles", out var ps) && ps.TryGetProperty(p, out var v)
                    ? v.GetDouble()
                    : null;

            return new LoadResult
            {
                Requests = ok + non2xx,
                DurationSeconds = seconds,
                Rps = seconds > 0 ? (ok + non2xx) / seconds : 0,
                P50Us = Latency("50"),
                P99Us = Latency("99"),
                Non2xx = non2xx,
                SocketErrors = errors,
                ErrorDetail = details.Count > 0 ? string.Join("; ", details) : null,
                Failure = result.ExitCode == 0 ? null : $"bombardier exited with {result.ExitCode}: {result.Tail(3)}",
            };
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return LoadResult.Failed($"bombardier's report was not understood: {ex.Message}");
        }
    }
}
