using System.Globalization;
using System.Text.Json;
using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Load;

/// <summary>
/// Uring.Perf.Client: an HttpClient load loop, one process per run, with the handler the spec
/// names. It warms up for a few seconds of its own (a fresh process JIT-compiles), then measures
/// and prints one JSON line: requests, errors, p50/p99 and its own CPU time over the window.
/// </summary>
internal sealed class HttpClientLoad(string dotnet, string dll) : ILoadTool
{
    public const string Project = "perf/Uring.Perf.Client/Uring.Perf.Client.csproj";
    public const string Dll = "perf/Uring.Perf.Client/bin/Release/net10.0/Uring.Perf.Client.dll";

    /// <summary>Load before each run's measured window, in the client process itself.</summary>
    public const int ClientWarmupSeconds = 2;

    public string Name => "httpclient";

    public string Version => $"Uring.Perf.Client (HttpClient, .NET {Environment.Version})";

    public static HttpClientLoad? Find(string repoRoot)
    {
        string dll = Path.Combine(repoRoot, Dll);
        string? dotnet = ChildProcesses.Which("dotnet");
        return dotnet is not null && File.Exists(dll) ? new HttpClientLoad(dotnet, dll) : null;
    }

    public LoadInvocation Prepare(LoadSpec spec)
    {
        string handler = spec.ClientHandler ?? throw new InvalidOperationException("the client scenario needs a handler");
        var args = new List<string>
        {
            dotnet, dll,
            "--handler", handler,
            "--url", spec.Url,
            "--duration", Str(spec.DurationSeconds),
            "--warmup", Str(ClientWarmupSeconds),
            "--concurrency", Str(spec.Connections),
        };
        return new LoadInvocation(args, Parse);
    }

    /// <summary>Reads the client's JSON line. Exposed for the parser's self-check.</summary>
    internal static LoadResult Parse(CommandResult result)
    {
        string? line = result.StdOut.Split('\n').LastOrDefault(l => l.TrimStart().StartsWith('{'));
        if (line is null)
        {
            return LoadResult.Failed($"Uring.Perf.Client exited with {result.ExitCode} without a result: {result.Tail(5)}");
        }
        try
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            long errors = r.GetProperty("errors").GetInt64();
            string? firstError = r.TryGetProperty("firstError", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
            return new LoadResult
            {
                Requests = r.GetProperty("requests").GetInt64(),
                Rps = r.GetProperty("rps").GetDouble(),
                DurationSeconds = r.GetProperty("seconds").GetDouble(),
                P50Us = r.GetProperty("p50Us").GetDouble(),
                P99Us = r.GetProperty("p99Us").GetDouble(),
                SocketErrors = errors,
                ErrorDetail = errors > 0 ? $"{errors} failed requests, first: {firstError}" : null,
                ClientCpuSeconds = r.GetProperty("cpuSeconds").GetDouble(),
                Failure = result.ExitCode == 0 ? null : $"Uring.Perf.Client exited with {result.ExitCode}: {result.Tail(3)}",
            };
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return LoadResult.Failed($"Uring.Perf.Client printed a result that could not be read ({ex.Message}): {line}");
        }
    }

    private static string Str(int n) => n.ToString(CultureInfo.InvariantCulture);
}
