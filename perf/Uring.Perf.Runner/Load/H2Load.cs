using System.Globalization;
using System.Text.RegularExpressions;
using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Load;

/// <summary>
/// h2load (Debian package nghttp2-client): HTTP/2 over cleartext with prior knowledge. Its
/// summary has no percentiles, so each run writes a per-request log (--log-file: start time,
/// status, microseconds to the end of the response) and p50/p99 are computed from it.
/// </summary>
internal sealed partial class H2Load(string path, string version) : ILoadTool
{
    public string Name => "h2load";

    public string Version { get; } = version;

    public LoadInvocation Prepare(LoadSpec spec)
    {
        string log = Path.Combine(Path.GetTempPath(), $"uring-h2load-{Environment.ProcessId}-{Guid.NewGuid():N}.log");
        var args = new List<string>
        {
            path,
            "-c", Str(spec.Connections),
            "-m", Str(spec.Streams),
            "-t", Str(Math.Min(spec.Threads, spec.Connections)),
            "-D", Str(spec.DurationSeconds),
            $"--log-file={log}",
        };
        foreach (string header in spec.Headers ?? [])
        {
            args.Add("-H");
            args.Add(header);
        }
        if (spec.BodyFile is not null)
        {
            args.Add("-d");
            args.Add(spec.BodyFile);
        }
        args.Add(spec.Url);
        return new LoadInvocation(args, r => Parse(r, log), log);
    }

    /// <summary>Sends a few requests; true when every one came back 2xx over HTTP/2.</summary>
    public bool Speaks(string url, out string detail)
    {
        var r = ChildProcesses.Run(path, ["-n", "8", "-c", "1", "-m", "1", url], TimeSpan.FromSeconds(15));
        var requests = RequestsRegex().Match(r.StdOut);
        var status = StatusRegex().Match(r.StdOut);
        bool ok = requests.Success && status.Success
            && requests.Groups["succeeded"].Value == "8" && status.Groups[1].Value == "8";
        detail = requests.Success ? requests.Value : r.Tail(3);
        return ok;
    }

    private static LoadResult Parse(CommandResult result, string log)
    {
        string text = result.StdOut;
        var finished = FinishedRegex().Match(text);
        var requests = RequestsRegex().Match(text);
        var status = StatusRegex().Match(text);
        if (!finished.Success || !requests.Success || !status.Success)
        {
            return LoadResult.Failed($"h2load exited with {result.ExitCode} without a report: {result.Tail(5)}");
        }

        long Group(Match m, string name) => long.Parse(m.Groups[name].Value, CultureInfo.InvariantCulture);
        long done = Group(requests, "done");
        long errors = Group(requests, "failed") + Group(requests, "errored") + Group(requests, "timeout");
        long non2xx = long.Parse(status.Groups[3].Value, CultureInfo.InvariantCulture) + long.Parse(status.Groups[4].Value, CultureInfo.InvariantCulture); // 4xx + 5xx
        string? detail = errors == 0 && non2xx == 0 ? null : $"{requests.Value}; {status.Value}";

        var durations = new List<long>();
        if (File.Exists(log))
        {
            foreach (string line in File.ReadLines(log))
            {
                string[] f = line.Split('\t');
                if (f.Length >= 3 && long.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out long us))
                {
                    durations.Add(us);
                }
            }
        }
        durations.Sort();

        return new LoadResult
        {
            Requests = done,
            DurationSeconds = ToSeconds(finished.Groups[1].Value, finished.Groups[2].Value),
            Rps = double.Parse(finished.Groups[3].Value, CultureInfo.InvariantCulture),
            P50Us = durations.Count > 0 ? Percentiles.Of(durations, 50) : null,
            P99Us = durations.Count > 0 ? Percentiles.Of(durations, 99) : null,
            Non2xx = non2xx,
            SocketErrors = errors,
            ErrorDetail = detail,
            Failure = result.ExitCode == 0 ? null : $"h2load exited with {result.ExitCode}: {result.Tail(3)}",
        };
    }

    private static double ToSeconds(string number, string unit) =>
        double.Parse(number, CultureInfo.InvariantCulture) * (unit switch { "ms" => 1e-3, "us" => 1e-6, "m" => 60, _ => 1 });

    private static string Str(int n) => n.ToString(CultureInfo.InvariantCulture);

    // "finished in 5.00s, 95432.20 req/s, 3.37MB/s"
    [GeneratedRegex(@"^finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req/s", RegexOptions.Multiline)]
    private static partial Regex FinishedRegex();

    // "requests: 477161 total, 477161 started, 477161 done, 477161 succeeded, 0 failed, 0 errored, 0 timeout"
    [GeneratedRegex(@"requests: (?<total>\d+) total, (?<started>\d+) started, (?<done>\d+) done, (?<succeeded>\d+) succeeded, (?<failed>\d+) failed, (?<errored>\d+) errored, (?<timeout>\d+) timeout")]
    private static partial Regex RequestsRegex();

    // "status codes: 477161 2xx, 0 3xx, 0 4xx, 0 5xx"
    [GeneratedRegex(@"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")]
    private static partial Regex StatusRegex();
}
