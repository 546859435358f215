// HttpClient load loop for the benchmark runner's client scenario (./build.sh bench --scenarios client-64).
//
//   Uring.Perf.Client --handler sockets|uring [--engine auto|iouring|epoll] --url URL
//                     [--duration S] [--warmup S] [--concurrency N]
//
// N callers share one HttpClient and send GET URL back to back for warm-up + duration seconds.
// Only the measured window counts: requests, errors, latency percentiles, and this process's own
// CPU time over the window (Process.TotalProcessorTime), printed as one line of JSON on stdout.

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Uring.Transport;

namespace Uring.Perf.Client;

public static class Program
{
    private const string Usage =
        "usage: Uring.Perf.Client --handler sockets|uring [--engine auto|iouring|epoll] --url URL [--duration S] [--warmup S] [--concurrency N]\n" +
        "  --handler      sockets = SocketsHttpHandler as is; uring = SocketsHttpHandler.UseUringTransport().\n" +
        "  --engine       the uring handler's engine. Default: auto.\n" +
        "  --url          what to GET, e.g. http://127.0.0.1:5101/plaintext.\n" +
        "  --duration S   measured seconds. Default 10.\n" +
        "  --warmup S     seconds of load before measuring (JIT, connections). Default 2.\n" +
        "  --concurrency  callers, each with one request in flight. Default 64.";

    private sealed record Settings(string Handler, UringEngine Engine, Uri Url, int DurationSeconds, int WarmupSeconds, int Concurrency);

    public static async Task<int> Main(string[] args)
    {
        if (!CommandLine.TryParse(args, Usage, Parse, out Settings? settings, out int exitCode))
            return exitCode;

        // Unlimited connections per server, no proxy: one connection per caller, as a load tool.
        var handler = new SocketsHttpHandler { UseProxy = false };
        if (settings.Handler == "uring")
        {
            handler.UseUringTransport(o => o.Engine = settings.Engine);
        }
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };

        var load = new Load(client, settings.Url, settings.Concurrency);
        Task running = load.RunAsync();
        await Task.Delay(TimeSpan.FromSeconds(settings.WarmupSeconds));

        using Process self = Process.GetCurrentProcess();
        TimeSpan cpuBefore = self.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        load.Measuring = true;
        await Task.Delay(TimeSpan.FromSeconds(settings.DurationSeconds));
        load.Measuring = false;
        clock.Stop();
        self.Refresh();
        TimeSpan cpu = self.TotalProcessorTime - cpuBefore;
        var (requests, errors, latencies, firstError) = load.Collect();
        load.Stop();
        await running;

        latencies.Sort();
        double seconds = clock.Elapsed.TotalSeconds;
        using var json = new Utf8JsonWriter(Console.OpenStandardOutput());
        json.WriteStartObject();
        json.WriteString("handler", settings.Handler);
        json.WriteString("engine", settings.Handler == "uring" ? settings.Engine.ToString() : null);
        json.WriteNumber("concurrency", settings.Concurrency);
        json.WriteNumber("requests", requests);
        json.WriteNumber("errors", errors);
        json.WriteNumber("seconds", seconds);
        json.WriteNumber("rps", requests / seconds);
        json.WriteNumber("cpuSeconds", cpu.TotalSeconds);
        json.WriteNumber("cpuUsPerRequest", requests > 0 ? cpu.TotalMicroseconds / requests : 0);
        json.WriteNumber("p50Us", Percentile(latencies, 50));
        json.WriteNumber("p99Us", Percentile(latencies, 99));
        json.WriteString("firstError", firstError);
        json.WriteEndObject();
        json.Flush();
        Console.WriteLine();
        return requests > 0 ? 0 : 1;
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    /// <summary>The callers: each sends GET, awaits the whole response, and sends the next.</summary>
    private sealed class Load(HttpClient client, Uri url, int concurrency)
    {
        private readonly Caller[] _callers = [.. Enumerable.Range(0, concurrency).Select(_ => new Caller())];
        private volatile bool _stop;

        public volatile bool Measuring;

        public Task RunAsync() => Task.WhenAll(_callers.Select(c => Task.Run(() => RunCallerAsync(c))));

        public void Stop() => _stop = true;

        /// <summary>What the callers counted while measuring.</summary>
        public (long Requests, long Errors, List<double> LatenciesUs, string? FirstError) Collect()
        {
            long requests = 0, errors = 0;
            string? firstError = null;
            var latencies = new List<double>();
            foreach (Caller c in _callers)
            {
                lock (c)
                {
                    requests += c.Requests;
                    errors += c.Errors;
                    firstError ??= c.FirstError;
                    latencies.AddRange(c.LatenciesUs);
                }
            }
            return (requests, errors, latencies, firstError);
        }

        private async Task RunCallerAsync(Caller caller)
        {
            while (!_stop)
            {
                long start = Stopwatch.GetTimestamp();
                bool ok;
                string? error = null;
                try
                {
                    using HttpResponseMessage response = await client.GetAsync(url);
                    ok = response.IsSuccessStatusCode;
                    if (!ok) error = $"HTTP {(int)response.StatusCode}";
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    ok = false;
                    error = e.GetBaseException().Message;
                }
                if (!Measuring) continue;
                double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
                lock (caller)
                {
                    if (ok)
                    {
                        caller.Requests++;
                        caller.LatenciesUs.Add(us);
                    }
                    else
                    {
                        caller.Errors++;
                        caller.FirstError ??= error;
                    }
                }
            }
        }
    }

    private sealed class Caller
    {
        public long Requests;
        public long Errors;
        public string? FirstError;
        public readonly List<double> LatenciesUs = new(1 << 16);
    }

    private static Settings? Parse(string[] args)
    {
        string? handler = null, url = null;
        UringEngine engine = UringEngine.Auto;
        int duration = 10, warmup = 2, concurrency = 64;
        var line = new CommandLine(args);
        while (line.MoveNext())
        {
            switch (line.Name)
            {
                case "-h" or "--help": return null;
                case "--handler": handler = line.Value(); break;
                case "--engine": engine = Enum.Parse<UringEngine>(line.Value().Replace("_", ""), ignoreCase: true); break;
                case "--url": url = line.Value(); break;
                case "--duration": duration = line.Int(1); break;
                case "--warmup": warmup = line.Int(0); break;
                case "--concurrency": concurrency = line.Int(1); break;
                default: throw line.Unknown();
            }
        }
        if (handler is not ("sockets" or "uring")) throw new ArgumentException("--handler must be sockets or uring");
        if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out Uri? uri)) throw new ArgumentException("--url needs an absolute URL");
        return new Settings(handler, engine, uri, duration, warmup, concurrency);
    }
}
