using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Load;

/// <summary>What load to put on a server: the shape of one run.</summary>
/// <param name="Url">Full URL, 127.0.0.1 only.</param>
/// <param name="Connections">TCP connections (h2load: clients).</param>
/// <param name="Threads">Load generator threads, one per load CPU.</param>
/// <param name="DurationSeconds">How long the tool sends load; the tool stops itself after it.</param>
/// <param name="PipelineDepth">HTTP/1.1 requests per write (1 = no pipelining).</param>
/// <param name="Streams">HTTP/2 concurrent streams per connection.</param>
/// <param name="DelayMs">Fixed rate, wrk: mean pause after each response, per connection.</param>
/// <param name="RateRps">Fixed rate, bombardier: total requests per second.</param>
/// <param name="ClientHandler">The client scenario: the HttpClient handler under test.</param>
/// <param name="Headers">Extra request headers ("Name: value"), e.g. "Connection: close" (wrk -H, h2load -H).</param>
/// <param name="Script">A wrk script in perf/wrk/ that makes the request (e.g. upload.lua).</param>
/// <param name="ScriptEnvironment">Environment variables for the script.</param>
/// <param name="BodyFile">A file whose bytes are every request's body (h2load -d: a POST).</param>
internal sealed record LoadSpec(
    string Url,
    int Connections,
    int Threads,
    int DurationSeconds,
    int PipelineDepth = 1,
    int Streams = 1,
    double? DelayMs = null,
    double? RateRps = null,
    string? ClientHandler = null,
    IReadOnlyList<string>? Headers = null,
    string? Script = null,
    IReadOnlyDictionary<string, string>? ScriptEnvironment = null,
    string? BodyFile = null);

/// <summary>What the load tool measured. Latencies are null where the tool cannot measure them.</summary>
internal sealed record LoadResult
{
    public long Requests { get; init; }
    public double Rps { get; init; }
    public double DurationSeconds { get; init; }
    public double? P50Us { get; init; }
    public double? P99Us { get; init; }

    /// <summary>Responses with a status of 400 or more (wrk: "Non-2xx or 3xx responses").</summary>
    public long Non2xx { get; init; }

    /// <summary>Connect/read/write errors and timeouts, summed.</summary>
    public long SocketErrors { get; init; }

    /// <summary>The tool's own breakdown of the errors, when there were any.</summary>
    public string? ErrorDetail { get; init; }

    /// <summary>Set when the run produced no usable measurement (tool failed, output not understood).</summary>
    public string? Failure { get; init; }

    /// <summary>The client scenario: the client process's own CPU seconds over the measured window.</summary>
    public double? ClientCpuSeconds { get; init; }

    public static LoadResult Failed(string why) => new() { Failure = why };
}

/// <summary>A prepared load run: the command line, and how to read its output.</summary>
internal sealed class LoadInvocation(IReadOnlyList<string> command, Func<CommandResult, LoadResult> parse, string? tempFile = null)
{
    /// <summary>Executable (full path) followed by its arguments.</summary>
    public IReadOnlyList<string> Command { get; } = command;

    /// <summary>Parses the tool's output; also removes its temporary file.</summary>
    public LoadResult Parse(CommandResult result)
    {
        try
        {
            if (result.Cancelled)
            {
                return LoadResult.Failed("cancelled");
            }
            if (result.TimedOut)
            {
                return LoadResult.Failed("the load tool did not finish in time and was killed");
            }
            return parse(result);
        }
        finally
        {
            if (tempFile is not null)
            {
                File.Delete(tempFile);
            }
        }
    }
}

/// <summary>A load generator: wrk, bombardier or h2load.</summary>
internal interface ILoadTool
{
    /// <summary>"wrk", "bombardier", "h2load".</summary>
    string Name { get; }

    /// <summary>The tool's own version line.</summary>
    string Version { get; }

    LoadInvocation Prepare(LoadSpec spec);
}

internal static class Percentiles
{
    /// <summary>Nearest-rank percentile of sorted values (p in 0..100).</summary>
    public static double Of(IReadOnlyList<long> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            return double.NaN;
        }
        int rank = (int)Math.Ceiling(p / 100.0 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }
}
