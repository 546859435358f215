namespace Uring.Transport.Tests;

/// <summary>
/// A thousand hostile or broken clients at a time (reset, silent, half-closed): the server keeps
/// serving, and afterwards every connection, fd, pooled block and provided buffer is back.
/// </summary>
[Collection(ResourceCountsCollection.Name)]
public sealed class StormTests(ITestOutputHelper output)
{
    private const int Clients = 1000;
    private const int Concurrency = 64; // clients in flight at once: 1,000 in all, without overflowing the backlog

    /// <summary>Kestrel's keep-alive and request-headers timeouts, short so the silent storm ends soon.</summary>
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Kestrel adds one heartbeat (1 s) to each timeout and checks once per heartbeat, so it closes
    /// 3 to 4 s after the last byte (its Sockets transport: 4.0 s); the rest is slack for a busy machine.
    /// </summary>
    private static readonly TimeSpan TimeoutSlack = TimeSpan.FromSeconds(4);

    [Theory, Engines]
    public async Task Thousand_clients_that_reset_right_after_connecting_leave_nothing_behind(UringEngine engine)
    {
        await using TestServer server = await StartAsync(engine);
        ServerResources baseline = await ServerResources.BaselineAsync(server);

        await ForEachClientAsync(async (i, token) =>
        {
            using Socket socket = await ConnectAsync(server, token);
            // A third reset at once, a third after a whole request (the server may be answering),
            // a third in the middle of the request headers.
            if (i % 3 == 1) await socket.SendAsync(Encoding.ASCII.GetBytes(RawConnection.Request("GET", "/plaintext")), token);
            if (i % 3 == 2) await socket.SendAsync("GET /plaintext HTTP/1.1\r\nHost: loc"u8.ToArray(), token);
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        });

        await baseline.AssertServerRecoveredAsync(server, output);
    }

    [Theory, Engines]
    public async Task Thousand_clients_that_send_nothing_are_closed_by_Kestrels_timeout_and_leave_nothing_behind(UringEngine engine)
    {
        await using TestServer server = await StartAsync(engine);
        ServerResources baseline = await ServerResources.BaselineAsync(server);
        var sockets = new Socket[Clients];
        var ends = new Task<TimeSpan>[Clients];

        try
        {
            await ForEachClientAsync(async (i, token) =>
            {
                sockets[i] = await ConnectAsync(server, token);
                ends[i] = TimeUntilServerEndsAsync(sockets[i]);
            });
            TimeSpan[] held = await Task.WhenAll(ends).WaitAsync(IdleTimeout + TimeoutSlack + Limits.Stop);

            TimeSpan longest = held.Max();
            output.WriteLine($"silent connections closed by the server after {held.Min().TotalSeconds:F1} to {longest.TotalSeconds:F1} s");
            Assert.True(longest <= IdleTimeout + TimeoutSlack,
                $"A silent connection was held open for {longest.TotalSeconds:F1} s; Kestrel's timeout is {IdleTimeout.TotalSeconds} s.");
        }
        finally
        {
            foreach (Socket? socket in sockets) socket?.Dispose();
        }

        await baseline.AssertServerRecoveredAsync(server, output);
    }

    [Theory, Engines]
    public async Task Thousand_clients_that_half_close_after_a_partial_request_leave_nothing_behind(UringEngine engine)
    {
        await using TestServer server = await StartAsync(engine);
        ServerResources baseline = await ServerResources.BaselineAsync(server);
        byte[] request = Encoding.ASCII.GetBytes(RawConnection.Request("GET", "/plaintext", "Content-Length: 100") + "partial body");
        int headerEnd = Encoding.ASCII.GetString(request).IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
        int answered400 = 0, answered200 = 0;

        await ForEachClientAsync(async (i, token) =>
        {
            using Socket socket = await ConnectAsync(server, token);
            // Cut inside the request line, the headers or the body.
            int cut = 1 + i % (request.Length - 1);
            await socket.SendAsync(request.AsMemory(0, cut), token);
            socket.Shutdown(SocketShutdown.Send);

            // Cut in the head: Kestrel answers 400 or just closes. Cut in the body: the app has its
            // request and answers (it does not read the body), then Kestrel closes.
            string answer = Encoding.ASCII.GetString(await ReadToEndAsync(socket, token));
            if (answer.Length == 0) return;
            if (cut < headerEnd)
            {
                Assert.StartsWith("HTTP/1.1 400 ", answer);
                Interlocked.Increment(ref answered400);
            }
            else
            {
                Assert.StartsWith("HTTP/1.1 200 ", answer);
                Assert.EndsWith("\r\n\r\nHello, World!", answer);
                Interlocked.Increment(ref answered200);
            }
        });

        output.WriteLine($"of {Clients} half-closed clients {answered400} got a 400, {answered200} a 200, the others a bare close");
        await baseline.AssertServerRecoveredAsync(server, output);
    }

    // No test output for the server's log: thousands of per-connection Debug lines would bury the
    // assertion, which says what was left behind.
    [Theory, Engines]
    public async Task Accepts_whose_handling_throws_cost_only_their_own_connection(UringEngine engine)
    {
        const int Faulty = 20;
        int faultsLeft = 0;
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output, new ServerSetup
        {
            Environment = TestEnvironment.Suite with
            {
                Accepted = _ =>
                {
                    if (Interlocked.Decrement(ref faultsLeft) >= 0) throw new InvalidOperationException("injected accept fault");
                },
            },
        });
        server.Logs.Allow(e => e.Exception?.Message == "injected accept fault");
        ServerResources baseline = await ServerResources.BaselineAsync(server);

        Volatile.Write(ref faultsLeft, Faulty);
        for (int i = 0; i < Faulty; i++)
        {
            // The server closes each at once (the fd is never leaked); the loop logs it and goes on accepting.
            using RawConnection faulty = await server.ConnectRawAsync();
            await faulty.SendAsync(RawConnection.Request("GET", "/plaintext"));
            Assert.Contains(await faulty.ReadEndAsync(), new[] { "FIN", "RST" });
        }

        using (HttpClient client = server.CreateClient())
        {
            for (int i = 0; i < 10; i++)
                Assert.Equal("Hello, World!", await client.GetStringAsync("plaintext"));
        }
        Assert.Equal(Faulty, server.Logs.Entries.Count(e => e.Exception?.Message == "injected accept fault"));
        await baseline.AssertServerRecoveredAsync(server, output);
    }

    private static Task<TestServer> StartAsync(UringEngine engine) => TestServer.StartAsync(engine, TestData.MapPlaintext, null,
        new ServerSetup
        {
            Kestrel = k =>
            {
                k.Limits.KeepAliveTimeout = IdleTimeout;
                k.Limits.RequestHeadersTimeout = IdleTimeout;
            },
        });

    /// <summary>Runs <see cref="Clients"/> clients, <see cref="Concurrency"/> at a time, all within a bound.</summary>
    private static async Task ForEachClientAsync(Func<int, CancellationToken, ValueTask> client)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await Parallel.ForEachAsync(Enumerable.Range(0, Clients),
            new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = cts.Token }, client);
    }

    private static async Task<Socket> ConnectAsync(TestServer server, CancellationToken token)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(server.EndPoint!, token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>How long until the server ends a connection on which nothing is sent (FIN or RST).</summary>
    private static async Task<TimeSpan> TimeUntilServerEndsAsync(Socket socket)
    {
        var held = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(IdleTimeout + TimeoutSlack + Limits.Stop);
        try
        {
            int n = await socket.ReceiveAsync(new byte[256], SocketFlags.None, cts.Token);
            Assert.True(n == 0, $"A silent client received {n} bytes.");
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
        }
        return held.Elapsed;
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket, CancellationToken token)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(token);
        cts.CancelAfter(Limits.Step);
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token)) > 0)
                received.Write(buffer, 0, n);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
        }
        return received.ToArray();
    }
}
