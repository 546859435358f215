using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;
using Uring.Transport;

namespace Uring.Transport.Tests;

/// <summary>Requests and responses over TCP and Unix sockets: framing, keep-alive, pipelining, concurrency.</summary>
public sealed class HttpTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Get_plaintext_returns_Hello_World(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);
        using HttpClient client = server.CreateClient();

        using HttpResponseMessage response = await client.GetAsync("plaintext");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Hello, World!", await response.Content.ReadAsStringAsync());
    }

    [Theory, Engines]
    public async Task Hundred_keep_alive_requests_share_one_connection(UringEngine engine)
    {
        var connectionIds = new ConcurrentBag<string>();
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/id", context =>
        {
            connectionIds.Add(context.Connection.Id);
            return TestData.WriteText(context, "ok");
        }), output);
        using HttpClient client = server.CreateClient(h => h.MaxConnectionsPerServer = 1);

        for (int i = 0; i < 100; i++)
        {
            using HttpResponseMessage response = await client.GetAsync("id");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("ok", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(100, connectionIds.Count);
        Assert.Single(connectionIds.Distinct());
    }

    [Theory, Engines]
    public async Task Sixteen_pipelined_requests_are_answered_in_order(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/echo-path/{i}",
            context => TestData.WriteText(context, "path " + context.Request.RouteValues["i"])), output);
        using RawConnection connection = await server.ConnectRawAsync();

        // All sixteen in one send: the server sees them back to back in its receive buffer.
        await connection.SendAsync(string.Concat(Enumerable.Range(0, 16).Select(i => RawConnection.Request("GET", $"/echo-path/{i}"))));

        for (int i = 0; i < 16; i++)
        {
            RawResponse response = await connection.ReadResponseAsync();
            Assert.Equal(200, response.StatusCode);
            Assert.Equal($"path {i}", response.BodyText);
        }
    }

    [Theory, Engines]
    public async Task Two_hundred_concurrent_connections_each_get_their_own_twenty_answers(UringEngine engine)
    {
        const int Connections = 200, RequestsEach = 20;
        int open = 0, maxOpen = 0;
        var connectionIds = new ConcurrentDictionary<string, int>();
        await using var server = await TestServer.StartAsync(engine,
            app => app.MapGet("/c/{c}/r/{r}", context =>
            {
                connectionIds.TryAdd(context.Connection.Id, 0);
                return TestData.WriteText(context, $"connection {context.Request.RouteValues["c"]} request {context.Request.RouteValues["r"]}");
            }),
            output,
            new ServerSetup
            {
                // Counts connections the server holds open at once.
                Listen = lo => lo.Use(next => async connection =>
                {
                    int now = Interlocked.Increment(ref open);
                    for (int seen = Volatile.Read(ref maxOpen); now > seen; seen = Volatile.Read(ref maxOpen))
                        Interlocked.CompareExchange(ref maxOpen, now, seen);
                    try { await next(connection); }
                    finally { Interlocked.Decrement(ref open); }
                }),
            });

        // Each client gets its first answer, then waits until all have one: only then are all 200
        // connections known to be open on the server at the same time.
        int answeredFirst = 0;
        var allAnsweredFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task RunClient(int c)
        {
            try
            {
                await RunRequests(c);
            }
            catch (Exception e)
            {
                allAnsweredFirst.TrySetException(e); // the others stop waiting for this one
                throw;
            }
        }
        async Task RunRequests(int c)
        {
            using RawConnection connection = await server.ConnectRawAsync();
            for (int r = 0; r < RequestsEach; r++)
            {
                await connection.SendAsync(RawConnection.Request("GET", $"/c/{c}/r/{r}"));
                RawResponse response = await connection.ReadResponseAsync();
                Assert.Equal(200, response.StatusCode);
                Assert.Equal($"connection {c} request {r}", response.BodyText);
                if (r == 0)
                {
                    if (Interlocked.Increment(ref answeredFirst) == Connections) allAnsweredFirst.TrySetResult();
                    await allAnsweredFirst.Task.WaitAsync(Limits.Step);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Connections).Select(c => Task.Run(() => RunClient(c)))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(Connections, connectionIds.Count);
        Assert.Equal(Connections, Volatile.Read(ref maxOpen));
    }

    [Theory, Engines]
    public async Task Five_hundred_short_connections_in_a_row_each_get_their_response(UringEngine engine)
    {
        // Each connection is closed right after its answer, so the next one is accepted onto the fd
        // number the previous one just released: nothing meant for the old connection may touch it.
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/n/{n}",
            context => TestData.WriteText(context, "n " + context.Request.RouteValues["n"])), output);

        for (int n = 0; n < 500; n++)
        {
            using RawConnection connection = await server.ConnectRawAsync();
            await connection.SendAsync(RawConnection.Request("GET", $"/n/{n}"));
            RawResponse response = await connection.ReadResponseAsync();
            Assert.Equal(200, response.StatusCode);
            Assert.Equal($"n {n}", response.BodyText);
        }
    }

    [Theory, Engines]
    public async Task Get_over_IPv6_loopback_works(UringEngine engine)
    {
        if (!Loopback.HasIPv6)
            return; // no ::1 on this machine

        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output,
            new ServerSetup { Address = IPAddress.IPv6Loopback });
        using HttpClient client = server.CreateClient();

        Assert.Equal(AddressFamily.InterNetworkV6, server.EndPoint!.AddressFamily);
        Assert.Equal("Hello, World!", await client.GetStringAsync("plaintext"));
    }

    [Theory, Engines]
    public async Task Port_zero_reports_the_real_port_and_serves_on_it(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);

        var reported = new Uri(server.Address);
        Assert.Equal("127.0.0.1", reported.Host);
        Assert.InRange(reported.Port, 1, 65535);

        // A plain connection to exactly the reported port gets an answer.
        using RawConnection connection = await RawConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, reported.Port));
        await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        Assert.Equal("Hello, World!", response.BodyText);
    }

    [Theory, Engines]
    public async Task Get_over_a_Unix_domain_socket_works(UringEngine engine)
    {
        DirectoryInfo directory = Directory.CreateTempSubdirectory("uring-uds-");
        try
        {
            string path = Path.Combine(directory.FullName, "kestrel.sock");
            await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output,
                new ServerSetup { UnixSocketPath = path });
            using HttpClient client = server.CreateClient();

            Assert.StartsWith("http://unix:", server.Address);
            using HttpResponseMessage response = await client.GetAsync("plaintext");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("Hello, World!", await response.Content.ReadAsStringAsync());
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory, Engines]
    public async Task Connection_feature_reports_the_engine_asked_for_and_a_loop_in_range(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/feature", context =>
        {
            IUringConnectionFeature? feature = context.Features.Get<IUringConnectionFeature>();
            return TestData.WriteText(context, feature is null ? "none" : $"{feature.Engine} {feature.LoopIndex}");
        }), output);

        // Several connections, so more than one loop is likely to serve one.
        for (int i = 0; i < 8; i++)
        {
            using RawConnection connection = await server.ConnectRawAsync();
            await connection.SendAsync(RawConnection.Request("GET", "/feature"));
            string[] answer = (await connection.ReadResponseAsync()).BodyText.Split(' ');

            Assert.Equal(engine.ToString(), answer[0]);
            Assert.InRange(int.Parse(answer[1]), 0, TestServer.RingCount - 1);
        }
    }

    [Theory]
    [InlineData(LoopAffinity.Pinned, true)]
    [InlineData(LoopAffinity.None, false)]
    public async Task Loop_threads_are_bound_to_one_CPU_each_as_LoopAffinity_says(LoopAffinity affinity, bool bound)
    {
        int[] allowed = NativeThread.AllowedCpus();
        await using TestServer server = await TestServer.StartAsync(UringEngine.IoUring, TestData.MapPlaintext, output,
            new ServerSetup { Transport = o => o.LoopAffinity = affinity });
        await ServerResources.AssertServesAsync(server);

        // This server's loops only: other tests' servers run alongside with their own affinity.
        var loops = server.Group.Loops
            .Select(loop => (Name: $"loop {loop.Index} (tid {loop.OsThreadId})",
                Cpus: File.ReadLines($"/proc/self/task/{loop.OsThreadId}/status").First(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split(':')[1].Trim()))
            .ToList();
        foreach (var loop in loops) output.WriteLine($"{loop.Name}: CPUs {loop.Cpus} (process may use {string.Join(',', allowed)})");
        Assert.NotEmpty(loops);
        foreach (var loop in loops)
            Assert.Equal(bound && allowed.Length > 1, int.TryParse(loop.Cpus, out _)); // a single CPU reads "3", several "0-1"
    }
}
