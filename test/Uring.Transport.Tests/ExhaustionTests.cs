using System.Globalization;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// Running out (of receive buffers, of Kestrel's attention) and a failure in the middle of a
/// receive cost the connection concerned, never a core or a buffer.
/// </summary>
[Collection(ResourceCountsCollection.Name)] // timing-sensitive counts: no parallel load
public sealed class ExhaustionTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task A_receive_whose_delivery_throws_gives_its_buffer_back_and_costs_only_its_connection(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output,
            new ServerSetup { Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)) });
        server.Logs.Allow(e => e.EventId.Id == 20); // the handler's failure, logged once
        await ServerResources.AssertServesAsync(server);

        // The next receive that carries a buffer claims more bytes than the buffer holds: copying it throws.
        foreach (ScriptedRing? ring in rings)
            ring!.RewriteOnce(c => c.HasBuffer && ScriptedRing.Is(c, OpKind.Recv) ? new Completion(c.UserData, 1 << 30, c.Flags) : null);
        using (RawConnection victim = await server.ConnectRawAsync())
        {
            await victim.SendAsync(RawConnection.Request("GET", "/plaintext"));
            Assert.True(await Peer.SeesTheEndAsync(victim.Socket, Limits.Stop), "The connection whose receive failed was not closed.");
        }
        foreach (ScriptedRing? ring in rings) ring!.RewriteOnce(_ => null);

        Assert.True(await Eventually.HoldsAsync(() => ServerResources.BuffersInUse(server) == 0, Limits.Stop),
            $"{ServerResources.BuffersInUse(server)} provided buffer(s) never came back.");
        Assert.Single(server.Logs.Entries, e => e.EventId.Id == 20);
        await ServerResources.AssertServesAsync(server);
    }

    [Theory, Engines]
    public async Task Connections_that_find_no_receive_buffer_wait_for_one_instead_of_spinning(UringEngine engine)
    {
        const int Connections = 8;
        ScriptedRing? ring = null;
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output, new ServerSetup
        {
            Transport = o =>
            {
                o.RingCount = 1;
                o.ProvidedBufferCount = 2;
            },
            Environment = TestEnvironment.Decorated((inner, _) => ring = new ScriptedRing(inner)),
        });
        var connections = new RawConnection[Connections];
        for (int i = 0; i < Connections; i++) connections[i] = await server.ConnectRawAsync();
        try
        {
            IoLoop loop = server.Group.Loops[0];
            long noBuffersBefore = loop.Counters.NoBuffers;
            // The two buffers' completions are held: the ring stays empty, as when the kernel has
            // filled every buffer and the loop has not handled them yet.
            ring!.HoldWhere(c => c.HasBuffer);
            int receivesBefore = ring.Receives;
            await Task.WhenAll(connections.Select(c => c.SendAsync(RawConnection.Request("GET", "/plaintext"))));
            await Task.Delay(300);
            int rearms = ring.Receives - receivesBefore;
            long noBuffers = loop.Counters.NoBuffers - noBuffersBefore;
            output.WriteLine($"while the ring was empty: {noBuffers} ENOBUFS, {rearms} receives prepared for {Connections} connections");

            ring.ReleaseAt(Environment.TickCount64);
            foreach (RawConnection connection in connections)
            {
                RawResponse response = await connection.ReadResponseAsync();
                Assert.Equal("Hello, World!", response.BodyText);
            }
            Assert.True(noBuffers > 0, "No receive found the ring empty: the test did not exhaust it.");
            // Held completions fool only the completions' accounting, which a real kernel cannot (it
            // handles every completion before resuming anyone): the bound needs the ring's own count.
            if (engine == UringEngine.Epoll || (ring.Features & RingFeatures.BufferRingStatus) != 0)
                Assert.True(rearms <= 3 * Connections, $"{rearms} receives were prepared into an empty ring in 300 ms: the connections spin.");
        }
        finally
        {
            foreach (RawConnection connection in connections) connection.Dispose();
        }
    }

    [Theory, Engines]
    public async Task Receive_buffer_memory_starts_at_one_chunk_and_grows_only_under_load(UringEngine engine)
    {
        // More uploads at once than the first chunk has buffers. Bulk data soon goes straight into
        // each input pipe, so only the uploads' first receives take provided buffers: their
        // completions are held until every upload is in flight, so the kernel has the first chunk
        // all out at once and the receives after it find none, whatever the timing.
        const int BufferSize = 8192, Count = 512, Chunk = 64, Uploads = 128, UploadBytes = 256 * 1024;
        ScriptedRing? ring = null;
        await using TestServer server = await TestServer.StartAsync(engine, app => app.Run(Uring.Perf.SampleEndpoints.Handle), output, new ServerSetup
        {
            Transport = o =>
            {
                o.RingCount = 1;
                o.ProvidedBufferCount = Count;
                o.ProvidedBufferSize = BufferSize;
            },
            Environment = TestEnvironment.Decorated((inner, _) => ring = new ScriptedRing(inner)),
        });
        IoLoop loop = server.Group.Loops[0];
        await ServerResources.AssertServesAsync(server);
        Assert.Equal((long)Chunk * BufferSize, loop.Buffers.AllocatedBytes); // idle: the first chunk only

        byte[] body = TestData.Random(UploadBytes, seed: 7);
        var connections = new RawConnection[Uploads];
        for (int i = 0; i < Uploads; i++) connections[i] = await server.ConnectRawAsync();
        try
        {
            ring!.HoldWhere(c => c.HasBuffer);
            Task[] sends = connections.Select(async c =>
            {
                await c.SendAsync(RawConnection.Request("POST", "/upload", $"Content-Length: {UploadBytes}"));
                await c.SendAsync(body);
            }).ToArray();
            await Task.Delay(300); // the loop sees the first chunk run out
            ring.ReleaseAt(Environment.TickCount64);
            await Task.WhenAll(sends).WaitAsync(Limits.Step);
            RawResponse[] answers = await Task.WhenAll(connections.Select(c => c.ReadResponseAsync())).WaitAsync(Limits.Step);
            output.WriteLine($"receive-buffer memory after {Uploads} concurrent 256 KiB uploads: {loop.Buffers.AllocatedBytes / 1024} KiB (at most {Count * BufferSize / 1024} KiB)");
            Assert.All(answers, a => Assert.Equal(UploadBytes.ToString(CultureInfo.InvariantCulture), a.BodyText));
            Assert.InRange(loop.Buffers.AllocatedBytes, (long)(Chunk + 1) * BufferSize, (long)Count * BufferSize);
        }
        finally
        {
            foreach (RawConnection c in connections) c.Dispose();
        }
    }

    [Theory, Engines]
    public async Task While_nobody_accepts_the_accept_queue_stops_growing_soon_after_Backlog_and_the_rest_waits_in_the_kernel(UringEngine engine)
    {
        // One loop. Once the queue is full the loop cancels its multishot accept, but the accept
        // goes on until the cancel runs: it finishes the round of the kernel's queue (Backlog + 1)
        // it was in, and without DEFER_TASKRUN it may run one more round first. So the queue is
        // bounded by Backlog plus two such rounds (and one more for the round that filled it),
        // well below the clients, and it stops growing once the cancel ran.
        const int Backlog = 4, Clients = 32, Bound = Backlog + 3 * (Backlog + 1);
        var factory = new UringTransportFactory(
            Options.Create(new UringTransportOptions { Engine = engine, RingCount = 1, Backlog = Backlog }), NullLoggerFactory.Instance);
        var listener = (UringConnectionListener)await factory.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var clients = new List<Socket>();
        var accepted = new List<ConnectionContext>();
        try
        {
            var connects = new List<Task>();
            for (int i = 0; i < Clients; i++)
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                clients.Add(client);
                // Each sends a byte: a client whose handshake the kernel completed with a SYN cookie
                // while its queue was full is only taken in again when its data arrives.
                connects.Add(Task.Run(async () =>
                {
                    await client.ConnectAsync(listener.EndPoint).WaitAsync(Limits.Step);
                    await client.SendAsync("x"u8.ToArray());
                }));
            }
            await Task.Delay(500);
            int queued = listener.Queued;
            output.WriteLine($"{queued} connection(s) waiting for AcceptAsync with Backlog {Backlog}");
            Assert.True(queued >= Backlog, $"Only {queued} of {Clients} connections were accepted in 500 ms (Backlog {Backlog}).");
            Assert.True(queued <= Bound, $"{queued} connections were accepted while nobody took them (Backlog {Backlog}).");
            await Task.Delay(500);
            Assert.True(listener.Queued == queued, $"The queue grew from {queued} to {listener.Queued} after it was full: accepting did not stop.");

            // Kestrel takes them: every client gets in.
            var clock = Stopwatch.StartNew();
            while (accepted.Count < Clients)
            {
                using var cts = new CancellationTokenSource(Limits.Step);
                ConnectionContext? connection = await listener.AcceptAsync(cts.Token);
                Assert.NotNull(connection);
                accepted.Add(connection);
                output.WriteLine($"{clock.ElapsedMilliseconds} ms: accepted {accepted.Count}, queued {listener.Queued}");
            }
            await Task.WhenAll(connects);
        }
        finally
        {
            foreach (ConnectionContext connection in accepted) await connection.DisposeAsync();
            foreach (Socket client in clients) client.Dispose();
            await listener.DisposeAsync();
        }
    }

    [Theory, Engines]
    public async Task An_unbind_that_times_out_still_ends_AcceptAsync(UringEngine engine)
    {
        ScriptedRing? ring = null;
        var options = new UringTransportOptions { Engine = engine, RingCount = 1 };
        var factory = new UringTransportFactory(Options.Create(options), NullLoggerFactory.Instance, TestEnvironment.Suite with
        {
            DecorateRing = (inner, _) => ring = new ScriptedRing(inner),
            UnbindTimeout = TimeSpan.FromMilliseconds(500),
        });
        var listener = (UringConnectionListener)await factory.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        try
        {
            ValueTask<ConnectionContext?> accepting = listener.AcceptAsync();
            ring!.HoldWhere(c => ScriptedRing.Is(c, OpKind.Accept)); // the acceptor's cancel never completes
            var clock = Stopwatch.StartNew();
            await listener.UnbindAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
            ConnectionContext? none = await accepting.AsTask().WaitAsync(TimeSpan.FromSeconds(5));
            output.WriteLine($"unbind returned after {clock.ElapsedMilliseconds} ms");
            Assert.Null(none);
        }
        finally
        {
            ring?.ReleaseAt(Environment.TickCount64);
            await listener.DisposeAsync();
        }
    }
}
