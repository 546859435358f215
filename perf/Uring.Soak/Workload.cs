using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Uring.Soak;

/// <summary>What a worker does next; each starts on a new connection.</summary>
internal enum Scenario
{
    /// <summary>10 to 50 GETs one after another on one connection.</summary>
    KeepAlive,

    /// <summary>3 rounds of 16 GETs sent in one write, answered in order.</summary>
    Pipelined,

    /// <summary>1 to 3 POST /echo of 0 to 512 KiB on one connection, sent while the echo is read.</summary>
    Upload,

    /// <summary>1 to 3 GET /download of 0 to 2 MiB, checked slice by slice.</summary>
    Download,

    /// <summary>An 8 MiB download closed (FIN) after a random part of it, or an upload closed mid-body.</summary>
    Abort,

    /// <summary>Reset (RST) right after a request, in the middle of an upload, or in the middle of a download.</summary>
    Reset,
}

/// <summary>
/// Counts for one scenario; failures are answers that were wrong, late or missing. Interrupted
/// counts runs the server cut short (reset or early close) in a tolerant workload; always 0 otherwise.
/// </summary>
internal sealed class ScenarioStats
{
    public long Runs;
    public long Requests;
    public long BytesVerified;
    public long Failures;
    public long Interrupted;
}

/// <summary>
/// Workers that run scenarios in a loop until told to stop, verifying every byte of every answer
/// they read to its end. Aborts and resets are the client's doing and are not failures; whatever
/// the server answers after them still is checked, by the next scenario on a new connection.
/// </summary>
/// <remarks>
/// Linked into the transport tests too, which run it against a server whose ring injects faults.
/// There the workload is <see cref="Tolerant"/>: a connection the server resets or closes early
/// (the consequence of an injected error) ends its scenario as interrupted, not failed. A wrong
/// byte, a wrong status or length (an answer to another request), a malformed response, or no
/// answer within <see cref="ScenarioTimeout"/> is still a failure.
/// </remarks>
internal sealed class Workload
{
    private const int MiB = 1024 * 1024;
    private static readonly byte[] s_plaintext = "Hello, World!"u8.ToArray();
    private static readonly (Scenario Scenario, int Weight)[] s_mix =
    [
        (Scenario.KeepAlive, 30), (Scenario.Pipelined, 15), (Scenario.Upload, 20),
        (Scenario.Download, 20), (Scenario.Abort, 8), (Scenario.Reset, 7),
    ];


    private readonly IPEndPoint _server;
    private readonly int _seed;

    public Workload(IPEndPoint server, int seed)
    {
        _server = server;
        _seed = seed;
    }

    /// <summary>How long one scenario may take before it counts as a failure (a server that stalls). Default: 30 s.</summary>
    public TimeSpan ScenarioTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// When true, a scenario the server cuts short (connection reset, or closed before the answer
    /// was complete) counts as <see cref="ScenarioStats.Interrupted"/> instead of a failure.
    /// </summary>
    public bool Tolerant { get; init; }

    public Dictionary<Scenario, ScenarioStats> Stats { get; } = Enum.GetValues<Scenario>().ToDictionary(s => s, _ => new ScenarioStats());

    /// <summary>The first failures, for the report.</summary>
    public ConcurrentQueue<string> FailureSamples { get; } = new();

    public long TotalFailures => Stats.Values.Sum(s => Interlocked.Read(ref s.Failures));

    public long TotalRequests => Stats.Values.Sum(s => Interlocked.Read(ref s.Requests));

    public long TotalInterrupted => Stats.Values.Sum(s => Interlocked.Read(ref s.Interrupted));

    /// <summary>The first interruptions (tolerant mode), for the report.</summary>
    public ConcurrentQueue<string> InterruptionSamples { get; } = new();

    /// <summary>One line per scenario: runs, requests, bytes verified, interruptions, failures.</summary>
    public string Describe() => string.Join(Environment.NewLine, Stats.Select(p =>
        $"{p.Key,-10} runs {p.Value.Runs,5}  requests {p.Value.Requests,6}  verified {p.Value.BytesVerified / 1048576.0,8:F1} MiB  " +
        $"interrupted {p.Value.Interrupted,4}  failures {p.Value.Failures,3}"));

    public Task RunAsync(int workers, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(() => WorkerAsync(w, stop))));

    private async Task WorkerAsync(int worker, CancellationToken stop)
    {
        var random = new Random(_seed * 1009 + worker);
        int totalWeight = s_mix.Sum(m => m.Weight);
        while (!stop.IsCancellationRequested)
        {
            int pick = random.Next(totalWeight);
            Scenario scenario = s_mix.First(m => (pick -= m.Weight) < 0).Scenario;
            ScenarioStats stats = Stats[scenario];
            Interlocked.Increment(ref stats.Runs);
            using var timeout = new CancellationTokenSource(ScenarioTimeout);
            try
            {
                await RunAsync(scenario, stats, random, timeout.Token);
            }
            catch (Exception e) when (Tolerant && !timeout.IsCancellationRequested && IsCutShort(e))
            {
                Interlocked.Increment(ref stats.Interrupted);
                if (InterruptionSamples.Count < 20)
                    InterruptionSamples.Enqueue($"{scenario}: {e.GetType().Name}: {e.Message}");
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref stats.Failures);
                if (FailureSamples.Count < 20)
                    FailureSamples.Enqueue($"{scenario}: {(timeout.IsCancellationRequested ? $"no answer within {ScenarioTimeout.TotalSeconds} s: " : "")}{e.GetType().Name}: {e.Message}");
            }
        }
    }

    /// <summary>
    /// The server reset the connection or closed it before the answer was complete: a socket error,
    /// or WireConnection's IOException for an early end. Not a wrong answer (InvalidDataException),
    /// not a stall (the scenario's timeout).
    /// </summary>
    private static bool IsCutShort(Exception e) => e switch
    {
        SocketException => true,
        InvalidDataException => false,
        IOException => true,
        _ => false,
    };

    private Task RunAsync(Scenario scenario, ScenarioStats stats, Random random, CancellationToken token) => scenario switch
    {
        Scenario.KeepAlive => KeepAliveAsync(stats, random, token),
        Scenario.Pipelined => PipelinedAsync(stats, token),
        Scenario.Upload => UploadAsync(stats, random, token),
        Scenario.Download => DownloadAsync(stats, random, token),
        Scenario.Abort => AbortAsync(stats, random, token),
        _ => ResetAsync(stats, random, token),
    };

    private async Task KeepAliveAsync(ScenarioStats stats, Random random, CancellationToken token)
    {
        using WireConnection connection = await WireConnection.ConnectAsync(_server, token);
        for (int i = random.Next(10, 51); i > 0; i--)
        {
            await connection.SendAsync(WireConnection.Get("/plaintext"), token);
            await ExpectPlaintextAsync(connection, stats, token);
        }
    }

    private async Task PipelinedAsync(ScenarioStats stats, CancellationToken token)
    {
        using WireConnection connection = await WireConnection.ConnectAsync(_server, token);
        string sixteen = string.Concat(Enumerable.Repeat(WireConnection.Get("/plaintext"), 16));
        for (int round = 0; round < 3; round++)
        {
            await connection.SendAsync(sixteen, token);
            for (int i = 0; i < 16; i++) await ExpectPlaintextAsync(connection, stats, token);
        }
    }

    private static async Task ExpectPlaintextAsync(WireConnection connection, ScenarioStats stats, CancellationToken token)
    {
        (ResponseHead head, byte[] body) = await connection.ReadResponseAsync(token);
        if (head.Status != 200 || !body.AsSpan().SequenceEqual(s_plaintext))
            throw new InvalidDataException($"GET /plaintext answered {head.Status} with {body.Length} bytes, not \"Hello, World!\"");
        Count(stats, body.Length);
    }

    private async Task UploadAsync(ScenarioStats stats, Random random, CancellationToken token)
    {
        using WireConnection connection = await WireConnection.ConnectAsync(_server, token);
        for (int i = random.Next(1, 4); i > 0; i--)
        {
            byte[] upload = new byte[random.Next(0, 512 * 1024 + 1)];
            random.NextBytes(upload);
            Task sending = SendUploadAsync(connection, upload, token);
            try
            {
                ResponseHead head = await connection.ReadHeadAsync(token);
                if (head.Status != 200 || head.ContentLength != upload.Length)
                    throw new InvalidDataException($"POST /echo of {upload.Length} bytes answered {head.Status} with {head.ContentLength} bytes");
                int at = 0;
                await connection.ReadBodyAsync(head.ContentLength, slice =>
                {
                    if (!slice.SequenceEqual(upload.AsSpan(at, slice.Length)))
                        throw new InvalidDataException($"POST /echo of {upload.Length} bytes: the echo differs within bytes {at} to {at + slice.Length}");
                    at += slice.Length;
                }, token);
            }
            catch
            {
                // The reading side decides the outcome; the upload then fails too, observed here.
                _ = sending.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                throw;
            }
            await sending;
            Count(stats, upload.Length);
        }
    }

    private static async Task SendUploadAsync(WireConnection connection, byte[] upload, CancellationToken token)
    {
        await connection.SendAsync(WireConnection.PostHead("/echo", upload.Length), token);
        await connection.SendAsync(upload, token);
    }

    private async Task DownloadAsync(ScenarioStats stats, Random random, CancellationToken token)
    {
        using WireConnection connection = await WireConnection.ConnectAsync(_server, token);
        for (int i = random.Next(1, 4); i > 0; i--)
        {
            int size = random.Next(0, 2 * MiB + 1), seed = random.Next();
            await connection.SendAsync(WireConnection.Get($"/download?size={size}&seed={seed}"), token);
            ResponseHead head = await connection.ReadHeadAsync(token);
            if (head.Status != 200 || head.ContentLength != size)
                throw new InvalidDataException($"GET /download?size={size} answered {head.Status} with {head.ContentLength} bytes");
            await ReadDownloadAsync(connection, size, seed, size, token);
            Count(stats, size);
        }
    }

    /// <summary>Reads <paramref name="count"/> bytes of a download and checks them against what new Random(seed) makes.</summary>
    private static async Task ReadDownloadAsync(WireConnection connection, long size, int seed, long count, CancellationToken token)
    {
        var expected = new Random(seed); // the app's generator: one byte at a time, so any slicing matches
        byte[] scratch = new byte[64 * 1024];
        long at = 0;
        await connection.ReadBodyAsync(count, slice =>
        {
            Span<byte> want = scratch.AsSpan(0, slice.Length);
            expected.NextBytes(want);
            if (!slice.SequenceEqual(want))
                throw new InvalidDataException($"GET /download?size={size}&seed={seed}: wrong bytes within {at} to {at + slice.Length}");
            at += slice.Length;
        }, token);
    }

    private async Task AbortAsync(ScenarioStats stats, Random random, CancellationToken token)
    {
        using WireConnection connection = await WireConnection.ConnectAsync(_server, token);
        if (random.Next(2) == 0)
        {
            // Close mid-response: what was read so far must still be right.
            int seed = random.Next();
            await connection.SendAsync(WireConnection.Get($"/download?size={8 * MiB}&seed={seed}"), token);
            ResponseHead head = await connection.ReadHeadAsync(token);
            if (head.Status != 200) throw new InvalidDataException($"GET /download answered {head.Status}");
            int part = random.Next(0, 256 * 1024);
            await ReadDownloadAsync(connection, 8 * MiB, seed, part, token);
            Count(stats, part);
        }
        else
        {
            // Close mid-upload: the app's echo is cut off by the client's FIN.
            await connection.SendAsync(WireConnection.PostHead("/echo", MiB), token);
            byte[] part = new byte[random.Next(0, 128 * 1024)];
            await connection.SendAsync(part, token);
            Interlocked.Increment(ref stats.Requests);
        }
    }

    private async Task ResetAsync(ScenarioStats stats, Random random, CancellationToken token)
    {
        using WireConnection connection = await WireConnection.ConnectAsync(_server, token);
        switch (random.Next(3))
        {
            case 0:
                await connection.SendAsync(WireConnection.Get("/plaintext"), token);
                break;
            case 1:
                await connection.SendAsync(WireConnection.PostHead("/echo", MiB), token);
                await connection.SendAsync(new byte[random.Next(0, 128 * 1024)], token);
                break;
            default:
                await connection.SendAsync(WireConnection.Get($"/download?size={8 * MiB}&seed=1"), token);
                await connection.ReadHeadAsync(token);
                break;
        }
        Interlocked.Increment(ref stats.Requests);
        connection.Reset();
    }

    private static void Count(ScenarioStats stats, long bytes)
    {
        Interlocked.Increment(ref stats.Requests);
        Interlocked.Add(ref stats.BytesVerified, bytes);
    }
}
