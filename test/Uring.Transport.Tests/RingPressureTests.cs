using System.IO.Pipelines;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace Uring.Transport.Tests;

/// <summary>
/// The rings under pressure: too few provided buffers, a tiny completion queue, many connections
/// moving data at once. Nothing may be lost, duplicated or delivered to the wrong connection.
/// </summary>
[Collection(ResourceCountsCollection.Name)]
public sealed class RingPressureTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Eight_provided_buffers_under_200_concurrent_uploads_lose_no_byte(UringEngine engine)
    {
        const int Uploads = 200, Size = 512 * 1024;
        await using var server = await TestServer.StartAsync(engine, app => app.MapPost("/hash", async context =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long total = 0;
            var buffer = new byte[16 * 1024];
            for (int n; (n = await context.Request.Body.ReadAsync(buffer)) > 0; total += n)
                hash.AppendData(buffer, 0, n);
            await TestData.WriteText(context, $"{total} {Convert.ToHexString(hash.GetHashAndReset())}");
        }), output, new ServerSetup { Transport = o => o.ProvidedBufferCount = 8 });
        using HttpClient client = server.CreateClient();

        // With 8 buffers per loop and ~100 connections on each, the kernel runs out of buffers all the
        // time (ENOBUFS): that must mean "re-arm", never a failed upload.
        await Task.WhenAll(Enumerable.Range(0, Uploads).Select(i => Task.Run(async () =>
        {
            byte[] upload = TestData.Random(Size, seed: 1000 + i);
            using HttpResponseMessage response = await client.PostAsync("hash", new ByteArrayContent(upload));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"{Size} {TestData.Sha256(upload)}", await response.Content.ReadAsStringAsync());
        }))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(await Eventually.HoldsAsync(() => ServerResources.BuffersInUse(server) == 0, Limits.Stop),
            $"{ServerResources.BuffersInUse(server)} provided buffers are still out of their ring.");
    }

    [Theory, Engines]
    public async Task Tiny_rings_under_a_burst_of_300_connections_with_16_pipelined_requests_each_lose_nothing(UringEngine engine)
    {
        // RingEntries 8: an 8-entry SQ and a 32-entry CQ, against hundreds of accepts, receives and
        // sends completing at once. The CQ overflows (the kernel keeps the rest: IORING_SQ_CQ_OVERFLOW)
        // and the SQ fills mid-batch; neither may lose a completion or an operation.
        const int Connections = 300, Pipelined = 16;
        await using var server = await TestServer.StartAsync(engine,
            app => app.MapGet("/c/{c}/r/{r}", context => TestData.WriteText(context, $"{context.Request.RouteValues["c"]}.{context.Request.RouteValues["r"]}")),
            output, new ServerSetup { Transport = o => o.RingEntries = 8 });

        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int connected = 0;
        await Task.WhenAll(Enumerable.Range(0, Connections).Select(c => Task.Run(async () =>
        {
            using RawConnection connection = await server.ConnectRawAsync();
            if (Interlocked.Increment(ref connected) == Connections) ready.TrySetResult();
            await ready.Task.WaitAsync(Limits.Step); // then all send at once: one burst
            await connection.SendAsync(string.Concat(Enumerable.Range(0, Pipelined).Select(r => RawConnection.Request("GET", $"/c/{c}/r/{r}"))));
            for (int r = 0; r < Pipelined; r++)
            {
                RawResponse response = await connection.ReadResponseAsync();
                Assert.Equal(200, response.StatusCode);
                Assert.Equal($"{c}.{r}", response.BodyText);
            }
        }))).WaitAsync(TimeSpan.FromSeconds(60));
    }

    [Theory, Engines]
    public async Task Five_hundred_connections_echoing_their_own_random_streams_each_get_exactly_their_own_bytes(UringEngine engine)
    {
        const int Connections = 500, Size = 128 * 1024;
        int served = 0;
        await using var server = await TestServer.StartAsync(engine, _ => { }, output, new ServerSetup
        {
            // A connection-level echo: every byte received goes straight back out.
            Listen = lo => lo.Run(async connection =>
            {
                Interlocked.Increment(ref served);
                await EchoAsync(connection);
            }),
        });

        var failures = new ConcurrentQueue<string>();
        await Task.WhenAll(Enumerable.Range(0, Connections).Select(c => Task.Run(async () =>
        {
            using RawConnection connection = await server.ConnectRawAsync();
            byte[] mine = TestData.Random(Size, seed: 50_000 + c);
            var random = new Random(c);
            // Write in random pieces while reading back concurrently, so the loops interleave
            // receives and sends of many connections through the same provided buffers and pool blocks.
            Task writer = Task.Run(async () =>
            {
                for (int at = 0; at < Size;)
                {
                    int n = Math.Min(Size - at, random.Next(1, 16 * 1024));
                    await connection.SendAsync(mine.AsMemory(at, n));
                    at += n;
                }
                connection.Socket.Shutdown(SocketShutdown.Send);
            });
            byte[] echoed = await ReadAllAsync(connection.Socket, Size);
            await writer;
            int firstDifference = mine.AsSpan().CommonPrefixLength(echoed);
            if (echoed.Length != Size || firstDifference != Size)
                failures.Enqueue($"connection {c}: got {echoed.Length} bytes back, first difference at {firstDifference}");
        }))).WaitAsync(TimeSpan.FromSeconds(90));

        Assert.Equal(Connections, served);
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures.Take(20)));
    }

    private static async Task EchoAsync(ConnectionContext connection)
    {
        while (true)
        {
            ReadResult result = await connection.Transport.Input.ReadAsync();
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                await connection.Transport.Output.WriteAsync(segment);
            connection.Transport.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted) break;
        }
    }

    /// <summary>Reads until the peer's FIN (up to <paramref name="expected"/> bytes and a little more, to catch extras).</summary>
    private static async Task<byte[]> ReadAllAsync(Socket socket, int expected)
    {
        using var cts = new CancellationTokenSource(Limits.Step);
        var buffer = new byte[expected + 4096];
        int have = 0;
        for (int n; have < buffer.Length && (n = await socket.ReceiveAsync(buffer.AsMemory(have), SocketFlags.None, cts.Token)) > 0;)
            have += n;
        return buffer[..have];
    }
}
