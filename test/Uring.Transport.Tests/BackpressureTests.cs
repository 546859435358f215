using Microsoft.AspNetCore.Connections;

namespace Uring.Transport.Tests;

/// <summary>
/// Peers that do not keep up, or do not stop: what the transport holds for them stays within its
/// options (MaxWriteBufferSize, MaxReadBufferSize plus one receive batch), measured on the pool.
/// </summary>
[Collection(ResourceCountsCollection.Name)]
public sealed class BackpressureTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;

    /// <summary>Blocks for whatever a connection holds besides the buffer under test: request head, block rounding.</summary>
    private const int Slack = 64 * 1024;

    [Theory, Engines]
    public async Task Peer_that_never_reads_holds_the_apps_64_MiB_write_at_MaxWriteBufferSize(UringEngine engine)
    {
        const int Total = 64 * MiB, Chunk = 64 * 1024, MaxWriteBufferSize = 128 * 1024;
        long written = 0;
        var appDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/big", async context =>
        {
            context.Response.ContentLength = Total;
            for (int i = 0; i < Total / Chunk; i++)
            {
                await context.Response.Body.WriteAsync(Stamped.Chunk(i, Chunk)); // waits while the transport is full
                Interlocked.Add(ref written, Chunk);
            }
            appDone.TrySetResult();
        }), output, new ServerSetup { Transport = o => o.MaxWriteBufferSize = MaxWriteBufferSize });

        // A small receive buffer set before connecting stops loopback from auto-tuning it to megabytes.
        using RawConnection connection = await server.ConnectRawAsync(s => s.ReceiveBufferSize = 64 * 1024);
        using var sampler = new RentedSampler(server);
        await connection.SendAsync(RawConnection.Request("GET", "/big"));

        long stalledAt = await WaitUntilStalledAsync(() => Interlocked.Read(ref written));
        await Task.Delay(200); // the app sits in its flush; the sampler keeps watching
        long peak = sampler.Peak;

        // The kernel holds at most the server's send buffer (auto-tuned up to tcp_wmem's maximum) and
        // the client's receive buffer; the transport at most MaxWriteBufferSize plus the write that crossed it.
        long kernel = KernelSetting("/proc/sys/net/ipv4/tcp_wmem") + connection.Socket.ReceiveBufferSize;
        output.WriteLine($"app stalled after writing {stalledAt / 1024} KiB; pool peak {peak / 1024} KiB; kernel buffers up to {kernel / 1024} KiB");
        Assert.False(appDone.Task.IsCompleted, "The app's 64 MiB write completed although the peer read nothing.");
        Assert.True(stalledAt <= MaxWriteBufferSize + Chunk + kernel,
            $"The app wrote {stalledAt} B to a peer that reads nothing (allowed: {MaxWriteBufferSize + Chunk + kernel} B).");
        Assert.True(peak <= MaxWriteBufferSize + Chunk + Slack,
            $"The pool held {peak} B for one blocked response (allowed: MaxWriteBufferSize {MaxWriteBufferSize} + one write {Chunk} + {Slack}).");

        // Now the peer reads: every byte arrives, in order, and the app's write completes.
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        Stamped.AssertChunks(response.Body, Chunk);
        await appDone.Task.WaitAsync(Limits.Step);
    }

    [Theory, Engines]
    public async Task Peer_that_floods_256_MiB_while_the_app_does_not_read_is_held_to_MaxReadBufferSize_plus_one_batch(UringEngine engine)
    {
        const int Total = 256 * MiB, Chunk = MiB, MaxReadBufferSize = MiB;
        const int ProvidedBufferCount = 64, ProvidedBufferSize = 8 * 1024; // one receive batch: at most 512 KiB
        const long Allowed = MaxReadBufferSize + ProvidedBufferCount * ProvidedBufferSize + Slack;
        var startReading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, _ => { }, output, new ServerSetup
        {
            Transport = o =>
            {
                o.MaxReadBufferSize = MaxReadBufferSize;
                o.ProvidedBufferCount = ProvidedBufferCount;
                o.ProvidedBufferSize = ProvidedBufferSize;
            },
            // A connection-level app: reads nothing until told, then hashes all it gets and answers.
            Listen = lo => lo.Run(async connection =>
            {
                await startReading.Task;
                await ReplyWithCountAndHashAsync(connection);
            }),
        });

        using RawConnection connection = await server.ConnectRawAsync();
        using var sampler = new RentedSampler(server);
        long sent = 0;
        Task sender = Task.Run(async () =>
        {
            for (int i = 0; i < Total / Chunk; i++)
            {
                await connection.Socket.SendAsync(Stamped.Chunk(i, Chunk), SocketFlags.None);
                Interlocked.Add(ref sent, Chunk);
            }
            connection.Socket.Shutdown(SocketShutdown.Send);
        });

        long stalledAt = await WaitUntilStalledAsync(() => Interlocked.Read(ref sent));
        await Task.Delay(200);
        long peak = sampler.Peak;
        output.WriteLine($"client stalled after sending {stalledAt / MiB} MiB; pool peak {peak / 1024} KiB (allowed {Allowed / 1024} KiB)");
        Assert.True(stalledAt < Total, "All 256 MiB went out although the app read nothing.");
        Assert.True(peak <= Allowed,
            $"The pool held {peak} B for one unread connection (allowed: MaxReadBufferSize {MaxReadBufferSize} + one batch {ProvidedBufferCount * ProvidedBufferSize} + {Slack}).");
        Assert.InRange(ServerResources.BuffersInUse(server), 0, ProvidedBufferCount);

        // The app reads now: every byte arrives, once, in order.
        startReading.SetResult();
        await sender.WaitAsync(TimeSpan.FromSeconds(60));
        var answer = new byte[8 + 32];
        await connection.Socket.ReceiveAsync(answer, SocketFlags.None, Limits.StepToken()); // 40 bytes: one segment on loopback
        Assert.Equal(Total, BitConverter.ToInt64(answer, 0));
        Assert.Equal(Stamped.Sha256(Total / Chunk, Chunk), Convert.ToHexString(answer, 8, 32));
    }

    private static async Task ReplyWithCountAndHashAsync(ConnectionContext connection)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        while (true)
        {
            var result = await connection.Transport.Input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer) hash.AppendData(segment.Span);
            total += result.Buffer.Length;
            connection.Transport.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted) break;
        }
        var answer = new byte[8 + 32];
        BitConverter.TryWriteBytes(answer, total);
        hash.GetHashAndReset().CopyTo(answer, 8);
        await connection.Transport.Output.WriteAsync(answer);
    }

    /// <summary>Waits until <paramref name="progress"/> has not moved for half a second; returns where it stopped.</summary>
    private static async Task<long> WaitUntilStalledAsync(Func<long> progress)
    {
        var deadline = Stopwatch.StartNew();
        long last = -1;
        var still = Stopwatch.StartNew();
        while (deadline.Elapsed < Limits.Step)
        {
            long now = progress();
            if (now != last)
            {
                last = now;
                still.Restart();
            }
            else if (still.ElapsedMilliseconds >= 500 && now > 0)
            {
                return now;
            }
            await Task.Delay(10);
        }
        Assert.Fail($"Progress never stalled within {Limits.Step.TotalSeconds} s (at {last} B).");
        return last;
    }

    [Theory, Engines]
    public async Task After_backpressure_the_receive_that_resumes_holds_no_memory_while_the_peer_is_quiet(UringEngine engine)
    {
        const int BufferSize = 4096, MaxRead = 4 * BufferSize;
        int body = 0; // set below, before the request comes
        var rings = new ScriptedRing?[1];
        var read = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using TestServer server = await TestServer.StartAsync(engine, app =>
        {
            TestData.MapPlaintext(app);
            app.MapPost("/later", async context =>
            {
                // Reads nothing until told, then the body the peer sent; the rest never comes.
                await read.Task;
                var buffer = new byte[BufferSize];
                for (int total = 0; total < body;) total += await context.Request.Body.ReadAsync(buffer);
                consumed.SetResult();
                _ = await context.Request.Body.ReadAsync(buffer, context.RequestAborted); // waits: the rest never comes
            });
        }, output, new ServerSetup
        {
            Transport = o =>
            {
                o.RingCount = 1;
                o.ProvidedBufferSize = BufferSize;
                o.MaxReadBufferSize = MaxRead;
            },
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)),
        });
        ScriptedRing ring = rings[0]!;
        await ServerResources.AssertServesAsync(server);
        long baseline = server.Group.Pool.RentedBytes;

        using RawConnection client = await server.ConnectRawAsync();
        await client.SendAsync(RawConnection.Request("POST", "/later", "Content-Length: 1048576"));
        if ((ring.Features & RingFeatures.MultishotRecv) != 0)
        {
            // Seven full provided buffers of one multishot receive, handled in one batch: the input
            // pauses at MaxReadBufferSize after the fourth, and the three after it are still
            // delivered. They are bulk-sized, but arrived after the pause: what resumes must not be
            // a direct receive (the 12 KiB left do not pause the input again when flushed).
            body = 7 * BufferSize;
            ring.HoldWhere(c => c.HasBuffer);
            await client.SendAsync(TestData.Random(body, seed: 5));
            Assert.True(await Eventually.HoldsAsync(() => ring.Held * BufferSize >= body, Limits.Step), $"Only {ring.Held} buffers of the body came.");
            ring.ReleaseAt(Environment.TickCount64);
        }
        else
        {
            // One receive at a time (a single one, then direct ones into the input): the input
            // pauses at MaxReadBufferSize while the rest waits in the socket. The body ends off any
            // buffer boundary: a receive that comes back full on the body's last byte is followed
            // by a direct one (bulk data, by the policy), however the peer then pauses.
            body = 64 * 1024 + 1031;
            await client.SendAsync(TestData.Random(body, seed: 5));
        }

        // The app reads it all; the input resumes. The peer sends nothing more.
        read.SetResult();
        await consumed.Task.WaitAsync(Limits.Step);
        Assert.True(await Eventually.HoldsAsync(() => ring.ReceivesSettled(), Limits.Step), "Receives went on being prepared on a quiet socket.");
        Assert.False(ring.LastRecvWasDirect, "The receive that resumed after backpressure is a direct one: it holds the input's memory while the peer is quiet.");
        Assert.True(await Eventually.HoldsAsync(() => server.Group.Pool.RentedBytes <= baseline, Limits.Stop),
            $"{server.Group.Pool.RentedBytes - baseline} bytes of pool memory stay rented while the peer is quiet.");
    }

    private static long KernelSetting(string path) => long.Parse(File.ReadAllText(path).Split('\t', ' ').Last(s => s.Length > 0));

    /// <summary>Watches the server's pool on a thread of its own and keeps the highest rented byte count.</summary>
    private sealed class RentedSampler : IDisposable
    {
        private readonly Thread _thread;
        private volatile bool _stop;
        private long _peak;

        public RentedSampler(TestServer server)
        {
            _thread = new Thread(() =>
            {
                while (!_stop)
                {
                    long now = server.Group.Pool.RentedBytes;
                    if (now > Interlocked.Read(ref _peak)) Interlocked.Exchange(ref _peak, now);
                    Thread.Sleep(1);
                }
            }) { IsBackground = true, Name = "pool sampler" };
            _thread.Start();
        }

        public long Peak => Interlocked.Read(ref _peak);

        public void Dispose()
        {
            _stop = true;
            _thread.Join();
        }
    }
}

/// <summary>Chunks of one seeded random block, each stamped with its index: cheap to make, any loss or reordering shows.</summary>
internal static class Stamped
{
    private static readonly byte[] s_block = TestData.Random(1024 * 1024, seed: 5);
    private static readonly Dictionary<(int, int), string> s_hashes = new();

    public static byte[] Chunk(int index, int size)
    {
        var chunk = new byte[size];
        s_block.AsSpan(0, size).CopyTo(chunk);
        BitConverter.TryWriteBytes(chunk, index);
        return chunk;
    }

    public static void AssertChunks(byte[] body, int size)
    {
        Assert.Equal(0, body.Length % size);
        for (int i = 0; i < body.Length / size; i++)
        {
            ReadOnlySpan<byte> chunk = body.AsSpan(i * size, size);
            if (BitConverter.ToInt32(chunk) != i || !chunk[4..].SequenceEqual(s_block.AsSpan(4, size - 4)))
                Assert.Fail($"Chunk {i} of {body.Length / size} (bytes {i * size} to {(i + 1) * size}) is not what the app wrote.");
        }
    }

    /// <summary>SHA-256 of chunks 0 to count-1, hex.</summary>
    public static string Sha256(int count, int size)
    {
        lock (s_hashes)
        {
            if (s_hashes.TryGetValue((count, size), out string? known)) return known;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (int i = 0; i < count; i++) hash.AppendData(Chunk(i, size));
            return s_hashes[(count, size)] = Convert.ToHexString(hash.GetHashAndReset());
        }
    }
}
