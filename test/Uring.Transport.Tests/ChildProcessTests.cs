using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace Uring.Transport.Tests;

/// <summary>
/// What only a process of its own can suffer (test/Uring.Transport.ChildServer): running out of
/// file descriptors, and SIGTERM while it is busy.
/// </summary>
[Collection(ChildProcessCollection.Name)]
public sealed partial class ChildProcessTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Running_out_of_fds_logs_accept_failures_backs_off_and_serves_again_once_fds_free_up(RingEngine engine)
    {
        const int Headroom = 16, Clients = 64;
        // The child's limit leaves room for Headroom connections once it listens.
        using ChildServerProcess child = await ChildServerProcess.StartAsync(engine, output, fdHeadroom: Headroom);

        // More clients than fds: the kernel completes every handshake (the backlog), the server can
        // accept about Headroom of them, then accept fails with EMFILE.
        var clients = new List<RawConnection>();
        try
        {
            for (int i = 0; i < Clients; i++)
            {
                RawConnection client = await RawConnection.ConnectAsync(child.EndPoint);
                clients.Add(client);
                await client.SendAsync(RawConnection.Request("GET", "/plaintext"));
            }
            await child.WaitForLineAsync(IsAcceptFailed, Limits.Step);

            // The loops live on: the clients accepted before the limit are answered, again and again.
            bool[] answered = await Task.WhenAll(clients.Select(async c =>
            {
                try
                {
                    RawResponse response = await c.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(2));
                    return response.StatusCode == 200;
                }
                catch (TimeoutException)
                {
                    return false; // still in the backlog
                }
            }));
            int served = answered.Count(a => a);
            output.WriteLine($"{served} of {Clients} clients served while out of fds");
            Assert.InRange(served, 1, Clients - 1);
            RawConnection survivor = clients[Array.IndexOf(answered, true)];
            await survivor.SendAsync(RawConnection.Request("GET", "/plaintext"));
            Assert.Equal(200, (await survivor.ReadResponseAsync()).StatusCode);
            Assert.True(await Eventually.HoldsAsync(() => child.Lines.Count(IsAcceptFailed) >= 3, Limits.Step), "Accepting was not retried.");
        }
        finally
        {
            foreach (RawConnection client in clients) client.Dispose();
        }

        // Fds free up: the next accept that is retried succeeds, the backlog drains, a new client is served.
        await AssertServesAsync(child.EndPoint);

        int[] delays = child.Lines.Where(IsAcceptFailed).Select(l => int.Parse(DelayMs().Match(l).Groups[1].Value)).ToArray();
        output.WriteLine($"{delays.Length} accept failures logged, retry delays (ms): {string.Join(", ", delays.Take(30))}");
        Assert.All(child.Lines.Where(IsAcceptFailed), l => Assert.Contains("EMFILE", l));
        // Backing off: each loop doubles its delay (10 ms up to 1 s) instead of retrying at once.
        Assert.True(delays.Length < 200, $"{delays.Length} accept failures logged: no back-off.");
        Assert.Contains(delays, d => d >= 40);

        child.Terminate();
        Assert.Equal(0, await child.WaitForExitAsync(Limits.Step));
        Assert.Empty(child.Problems());
    }

    [Theory, Engines]
    public async Task SIGTERM_while_64_connections_are_busy_exits_0_without_errors_twenty_times(RingEngine engine)
    {
        for (int run = 0; run < 20; run++)
        {
            using ChildServerProcess child = await ChildServerProcess.StartAsync(engine, null);
            using var load = new BusyClients(child.EndPoint, connections: 64);
            await load.AllBusy.WaitAsync(Limits.Step);

            child.Terminate();
            int exitCode = await child.WaitForExitAsync(TimeSpan.FromSeconds(20));
            await load.StopAsync();

            output.WriteLine($"run {run}: {load.Completed} requests completed, exit code {exitCode}, {load.EndedBySignal} clients cut off by the stop");
            Assert.True(exitCode == 0, $"Run {run}: exit code {exitCode}. The child wrote:{Environment.NewLine}{child.Tail()}");
            Assert.Contains("STOPPED", child.Lines);
            Assert.True(child.Problems().Count == 0, $"Run {run}: {string.Join(Environment.NewLine, child.Problems())}");
            Assert.True(load.Failures.IsEmpty, $"Run {run}: {string.Join(Environment.NewLine, load.Failures.Take(10))}");
        }
    }

    private static bool IsAcceptFailed(string line) => line.StartsWith("LOG Warning Uring.Transport[3] ", StringComparison.Ordinal);

    [GeneratedRegex(@"retrying in (\d+) ms")]
    private static partial Regex DelayMs();

    private static async Task AssertServesAsync(IPEndPoint endPoint)
    {
        using RawConnection connection = await RawConnection.ConnectAsync(endPoint);
        await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        Assert.Equal("Hello, World!", response.BodyText);
    }

    /// <summary>
    /// Keep-alive clients looping over small GETs, 256 KiB downloads and 64 KiB echoes, checking every
    /// byte. Once the server stops, a client may find its connection closed or refused between
    /// requests; a response cut short or wrong is a failure at any time.
    /// </summary>
    private sealed class BusyClients : IDisposable
    {
        private const int DownloadSize = 256 * 1024, EchoSize = 64 * 1024;
        private static readonly byte[] s_download = Download(DownloadSize);
        private readonly CancellationTokenSource _stop = new();
        private readonly TaskCompletionSource _allBusy = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task[] _clients;
        private int _busy;
        private int _completed;
        private int _endedBySignal;

        public BusyClients(IPEndPoint endPoint, int connections) =>
            _clients = Enumerable.Range(0, connections).Select(i => Task.Run(() => RunAsync(endPoint, i))).ToArray();

        /// <summary>Completes once every client has had an answer.</summary>
        public Task AllBusy => _allBusy.Task;

        public int Completed => Volatile.Read(ref _completed);

        public int EndedBySignal => Volatile.Read(ref _endedBySignal);

        public ConcurrentQueue<string> Failures { get; } = new();

        public async Task StopAsync()
        {
            _stop.Cancel();
            await Task.WhenAll(_clients).WaitAsync(Limits.Step);
        }

        public void Dispose() => _stop.Cancel();

        private async Task RunAsync(IPEndPoint endPoint, int client)
        {
            bool counted = false;
            byte[] echo = TestData.Random(EchoSize, seed: client);
            try
            {
                using RawConnection connection = await RawConnection.ConnectAsync(endPoint);
                for (int r = 0; !_stop.IsCancellationRequested; r++)
                {
                    RawResponse response;
                    byte[] expected;
                    switch ((client + r) % 3)
                    {
                        case 0:
                            await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
                            expected = "Hello, World!"u8.ToArray();
                            break;
                        case 1:
                            await connection.SendAsync(RawConnection.Request("GET", $"/download?size={DownloadSize}"));
                            expected = s_download;
                            break;
                        default:
                            await connection.SendAsync(RawConnection.Request("POST", "/echo", $"Content-Length: {EchoSize}"));
                            await connection.SendAsync(echo);
                            expected = echo;
                            break;
                    }
                    try
                    {
                        response = await connection.ReadResponseAsync();
                    }
                    catch (IOException e) when (!e.Message.Contains("(0 bytes pending)", StringComparison.Ordinal))
                    {
                        // RawConnection: "closed after N of M body bytes" or "closed mid-response (N bytes pending)".
                        Failures.Enqueue($"client {client} request {r}: response cut short: {e.Message}");
                        return;
                    }
                    if (response.StatusCode != 200 || !response.Body.AsSpan().SequenceEqual(expected))
                    {
                        Failures.Enqueue($"client {client} request {r}: status {response.StatusCode}, {response.Body.Length} bytes, not what was expected");
                        return;
                    }
                    Interlocked.Increment(ref _completed);
                    if (!counted)
                    {
                        counted = true;
                        if (Interlocked.Increment(ref _busy) == _clients.Length) _allBusy.TrySetResult();
                    }
                    if (response.Header("Connection") is "close") break; // the server is stopping
                }
            }
            catch (Exception e) when (e is IOException or SocketException or InvalidDataException && _allBusy.Task.IsCompleted)
            {
                Interlocked.Increment(ref _endedBySignal); // closed, reset or refused between requests: the stop
            }
            catch (Exception e)
            {
                Failures.Enqueue($"client {client}: {e.GetType().Name}: {e.Message}");
                _allBusy.TrySetException(e);
            }
        }

        private static byte[] Download(int size)
        {
            var body = new byte[size];
            new Random(size).NextBytes(body); // what the child's /download sends
            return body;
        }
    }
}
