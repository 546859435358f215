using System.Globalization;
using System.Text.RegularExpressions;
using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Load;

/// <summary>
/// wrk (Debian's 4.1): closed-loop HTTP/1.1, pipelining through perf/wrk/pipeline.lua, paced
/// load through perf/wrk/fixed-rate.lua, other request shapes through a scenario's own script
/// (perf/wrk/upload.lua) and extra headers (-H "Connection: close"). Results are read from its
/// text output (--latency).
/// </summary>
internal sealed partial class Wrk(string path, string version, string scriptDir) : ILoadTool
{
    public string Name => "wrk";

    public string Version { get; } = version;

    public LoadInvocation Prepare(LoadSpec spec)
    {
        var args = new List<string>
        {
            path,
            "-t", Str(Math.Min(spec.Threads, spec.Connections)),
            "-c", Str(spec.Connections),
            "-d", $"{Str(spec.DurationSeconds)}s",
        };
        if (spec.BodyFile is not null)
        {
            throw new InvalidOperationException("wrk sends a body only through a script");
        }
        foreach (string header in spec.Headers ?? [])
        {
            args.Add("-H");
            args.Add(header);
        }
        string? script = null;
        string? scriptArg = null;
        if (spec.Script is not null)
        {
            if (spec.PipelineDepth > 1 || spec.DelayMs is not null)
            {
                throw new InvalidOperationException("a scenario's own wrk script does not combine with pipelining or pacing");
            }
            script = spec.Script;
        }
        else if (spec.PipelineDepth > 1)
        {
            script = "pipeline.lua";
            scriptArg = Str(spec.PipelineDepth);
        }
        else if (spec.DelayMs is double delay)
        {
            script = "fixed-rate.lua";
            scriptArg = delay.ToString("0.####", CultureInfo.InvariantCulture);
        }
        else if (spec.RateRps is not null)
        {
            throw new InvalidOperationException("wrk paces by delay, not by a total rate");
        }
        if (spec.PipelineDepth <= 1)
        {
            args.Add("--latency");
        }
        if (script is not null)
        {
            args.Add("-s");
            args.Add(Path.Combine(scriptDir, script));
        }
        args.Add(spec.Url);
        if (scriptArg is not null)
        {
            args.Add("--");
            args.Add(scriptArg);
        }
        if (spec.ScriptEnvironment is { Count: > 0 } environment)
        {
            // The script reads its settings from the environment: env(1) in front keeps the whole
            // command one argument list (it runs under taskset, sh and perf).
            args.InsertRange(0, [ChildProcesses.Which("env") ?? "env", .. environment.Select(kv => $"{kv.Key}={kv.Value}")]);
        }
        bool latency = spec.PipelineDepth <= 1;
        return new LoadInvocation(args, r => Parse(r, latency));
    }

    /// <summary>Reads wrk's report. Exposed for the parser's self-check.</summary>
    internal static LoadResult Parse(CommandResult result, bool latency)
    {
        string text = result.StdOut;
        var total = TotalRegex().Match(text);
        var rps = RpsRegex().Match(text);
        if (!total.Success || !rps.Success)
        {
            return LoadResult.Failed($"wrk exited with {result.ExitCode} without a report: {result.Tail(5)}");
        }

        long non2xx = 0;
        var non = Non2xxRegex().Match(text);
        if (non.Success)
        {
            non2xx = long.Parse(non.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        long socketErrors = 0;
        string? detail = null;
        var errors = SocketErrorsRegex().Match(text);
        if (errors.Success)
        {
            socketErrors = Enumerable.Range(1, 4).Sum(i => long.Parse(errors.Groups[i].Value, CultureInfo.InvariantCulture));
            detail = "socket errors: " + errors.Value["Socket errors: ".Length..];
        }
        if (non2xx > 0)
        {
            detail = (detail is null ? "" : detail + "; ") + $"non-2xx/3xx responses: {non2xx}";
        }

        return new LoadResult
        {
            Requests = long.Parse(total.Groups[1].Value, CultureInfo.InvariantCulture),
            DurationSeconds = ToMicroseconds(total.Groups[2].Value, total.Groups[3].Value) / 1e6,
            Rps = double.Parse(rps.Groups[1].Value, CultureInfo.InvariantCulture),
            P50Us = latency ? Percentile(text, "50") : null,
            P99Us = latency ? Percentile(text, "99") : null,
            Non2xx = non2xx,
            SocketErrors = socketErrors,
            ErrorDetail = detail,
            Failure = result.ExitCode == 0 ? null : $"wrk exited with {result.ExitCode}: {result.Tail(3)}",
        };
    }

    private static double? Percentile(string text, string p)
    {
        var m = Regex.Match(text, $@"^\s+{p}%\s+([\d.]+)(us|ms|s|m|h)\s*$", RegexOptions.Multiline);
        return m.Success ? ToMicroseconds(m.Groups[1].Value, m.Groups[2].Value) : null;
    }

    private static double ToMicroseconds(string number, string unit) =>
        double.Parse(number, CultureInfo.InvariantCulture) * unit switch
        {
            "us" => 1,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3600e6,
            _ => throw new FormatException($"unknown wrk time unit '{unit}'"),
        };

    private static string Str(int n) => n.ToString(CultureInfo.InvariantCulture);

    // "  591783 requests in 5.00s, 69.98MB read"
    [GeneratedRegex(@"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", RegexOptions.Multiline)]
    private static partial Regex TotalRegex();

    [GeneratedRegex(@"^Requests/sec:\s+([\d.]+)", RegexOptions.Multiline)]
    private static partial Regex RpsRegex();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex SocketErrorsRegex();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")]
    private static partial Regex Non2xxRegex();
}
