using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// What only a process of its own can suffer (test/Uring.Transport.ChildServer): running into its
/// file descriptor limit, and SIGTERM while it is busy.
/// </summary>
[Collection(ChildProcessCollection.Name)]
public sealed class ChildProcessTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task At_the_fd_limit_the_server_keeps_the_reserve_stays_alive_and_idle_and_serves_again_as_soon_as_connections_close(UringEngine engine)
    {
        // The child's limit leaves room for a headroom of fds once it listens; more clients come than
        // that. The transport keeps a reserve of fds for the runtime (at EMFILE .NET cannot start a
        // thread, and the process dies), so it stops accepting short of the limit; the kernel's
        // backlog holds the rest. Runs 1 and 2: the clients connect while the child is stopped
        // (SIGSTOP), so all of them wait in the backlog at once and one multishot accept round could
        // take every one. Run 3: a listen backlog of 16 and more headroom, so accepts are multishot
        // until a round no longer fits, then single-shot; the clients come one after another. Then
        // some served clients close one by one while others wait: each close may let one in, no more.
        // No connection takes a reserved fd number throughout. Each run is a fresh process.
        const int Runs = 3, Closing = 8;
        for (int run = 1; run <= Runs; run++)
        {
            bool frozen = run < 3;
            int headroom = frozen ? 48 : 100;
            using ChildServerProcess child = await ChildServerProcess.StartAsync(engine, output, fdHeadroom: headroom, backlog: frozen ? null : 16);
            int limit = int.Parse((await child.WaitForLineAsync(l => l.StartsWith("LIMITED ", StringComparison.Ordinal), Limits.Step))["LIMITED ".Length..]);
            int reserve = (int)FdHeadroom.Reserve(limit);
            int clientCount = frozen ? 64 : headroom - reserve + 12; // 12 wait: within one backlog of 16
            var clients = new List<RawConnection>();
            void AssertReserveFree(string when)
            {
                // No connection holds a reserved number: a socket there can only be an acceptor's probe
                // (a copy of its listening socket, held for a few system calls). Files there are the
                // runtime's own.
                SortedDictionary<int, string> reserved = child.FdsFrom(limit - reserve);
                int sockets = reserved.Values.Count(t => t.StartsWith("socket:", StringComparison.Ordinal));
                output.WriteLine($"run {run}: {child.OpenFds()} of {limit} fds open {when}; {reserved.Count} of the {reserve} reserved numbers in use ({sockets} sockets)");
                Assert.True(sockets <= 1, $"Run {run}: {when}, connections hold reserved fd numbers: {string.Join(", ", reserved.Select(r => $"{r.Key}: {r.Value}"))}.");
            }
            try
            {
                if (frozen) child.Freeze();
                try
                {
                    while (clients.Count < clientCount)
                    {
                        RawConnection client = await RawConnection.ConnectAsync(child.EndPoint);
                        clients.Add(client);
                        await client.SendAsync(RawConnection.Request("GET", "/plaintext"));
                    }
                }
                finally
                {
                    if (frozen) child.Continue();
                }
                string paused = await child.WaitForLineAsync(IsAcceptPaused, Limits.Step);

                // The clients accepted before the reserve are answered; the rest wait in the backlog.
                bool[] answered = await Task.WhenAll(clients.Select(async c =>
                {
                    try
                    {
                        return (await c.ReadResponseAsync().WaitAsync(TimeSpan.FromSeconds(2))).StatusCode == 200;
                    }
                    catch (TimeoutException)
                    {
                        return false;
                    }
                }));
                int served = answered.Count(a => a);
                Match logged = Regex.Match(paused, @"about (\d+) of the process's (\d+) file descriptors are open, and (\d+) are kept");
                Assert.True(logged.Success, paused);
                output.WriteLine($"run {run}: paused at {logged.Groups[1].Value} of {logged.Groups[2].Value} fds; {served} of {clientCount} clients served");
                Assert.Equal((limit, reserve), (int.Parse(logged.Groups[2].Value), int.Parse(logged.Groups[3].Value)));
                Assert.True(int.Parse(logged.Groups[1].Value) < limit, $"Run {run}: accepting paused only when all {limit} fds were open.");
                Assert.InRange(served, 1, clientCount - 1);
                AssertReserveFree("at the pause");

                for (int i = 0, closed = 0; i < clients.Count && closed < Closing; i++)
                {
                    if (!answered[i]) continue;
                    clients[i].Dispose();
                    closed++;
                    await Task.Delay(50);
                }
                await Task.Delay(200);
                AssertReserveFree($"after {Closing} served clients closed one by one");

                // Held at the limit: alive, and idle (no accept armed to spin on). Measured after a
                // settling second, as the runtime compiles what the closes ran in the background.
                await Task.Delay(1000);
                var held = TimeSpan.FromMilliseconds(FdHeadroom.MaxPauseMilliseconds * 2.5); // the cap ends the pause again and again
                TimeSpan cpu = await child.CpuTimeOverAsync(held);
                output.WriteLine($"run {run}: {cpu.TotalMilliseconds:F0} ms of CPU in {held.TotalMilliseconds:F0} ms while held");
                Assert.True(cpu < held / 20, $"Run {run}: the child used {cpu.TotalMilliseconds:F0} ms of CPU in {held.TotalMilliseconds:F0} ms while held at the limit.");
                AssertReserveFree("after the pause's cap passed many times");
                Assert.False(child.HasExited, $"Run {run}: the child died at the limit. It wrote:{Environment.NewLine}{child.Tail()}");
            }
            finally
            {
                foreach (RawConnection client in clients) client.Dispose();
            }

            // Connections close: accepting resumes at once, not after a back-off timer.
            var clock = Stopwatch.StartNew();
            await AssertServesAsync(child.EndPoint);
            output.WriteLine($"run {run}: served again {clock.ElapsedMilliseconds} ms after the clients closed");
            Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(250), $"Run {run}: served again only after {clock.ElapsedMilliseconds} ms.");

            Assert.Single(child.Lines, IsAcceptPaused); // logged once
            child.Terminate();
            int exitCode = await child.WaitForExitAsync(Limits.Step);
            Assert.True(exitCode == 0, $"Run {run}: exit code {exitCode}. The child wrote:{Environment.NewLine}{child.Tail()}");
            Assert.Empty(child.Problems());
        }
    }

    [Theory, Engines]
    public async Task SIGTERM_while_64_connections_are_busy_exits_0_without_errors_twenty_times(UringEngine engine)
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

    private static bool IsAcceptPaused(string line) => line.StartsWith("LOG Warning Uring.Transport[8] ", StringComparison.Ordinal);

    private static async Task AssertServesAsync(IPEndPoint endPoint)
    {
        using RawConnection connection = await RawConnection.ConnectAsync(endPoint);
        await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
        RawResponse response = await connection.ReadResponseAsync().WaitAsync(Limits.Stop);
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
