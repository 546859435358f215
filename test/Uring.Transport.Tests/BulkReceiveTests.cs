using System.Buffers;
using Microsoft.AspNetCore.Connections;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// Bulk data is received straight into the input pipe's memory (a plain recv per arm, no provided
/// buffer, no copy), and that memory stays the kernel's until the recv's completion, whatever the
/// connection does meanwhile.
/// </summary>
public sealed class BulkReceiveTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;

    [Theory, Engines]
    public async Task A_large_upload_is_received_straight_into_the_input_pipe_byte_exact(UringEngine engine)
    {
        const int Size = 8 * MiB;
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(engine, app => app.MapPost("/hash", async context =>
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[100_000]; // not a multiple of any receive size
            int n;
            while ((n = await context.Request.Body.ReadAsync(buffer)) > 0) sha.AppendData(buffer, 0, n);
            await TestData.WriteText(context, Convert.ToHexString(sha.GetHashAndReset()));
        }), output, new ServerSetup { Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)) });
        byte[] upload = TestData.Random(Size, seed: 11);

        using RawConnection connection = await server.ConnectRawAsync();
        await connection.SendAsync(RawConnection.Request("POST", "/hash", $"Content-Length: {Size}"));
        await connection.SendAsync(upload);
        RawResponse response = await connection.ReadResponseAsync().WaitAsync(Limits.Step);

        int direct = rings.Sum(r => r!.DirectRecvs), provided = rings.Sum(r => r!.Receives);
        output.WriteLine($"receives prepared: {direct} straight into the pipe, {provided} into provided buffers");
        Assert.Equal(TestData.Sha256(upload), response.BodyText);
        Assert.True(direct > 0, "No receive went straight into the input pipe.");

        // Request/response traffic after the upload goes back to provided buffers and still works.
        await connection.SendAsync(RawConnection.Request("POST", "/hash", "Content-Length: 3"));
        await connection.SendAsync("abc"u8.ToArray());
        Assert.Equal(TestData.Sha256("abc"u8), (await connection.ReadResponseAsync()).BodyText);
        Assert.All(rings, r => Assert.False(r!.LastRecvWasDirect, "After a small request the connection still receives straight into its input."));
    }

    [Theory, Engines]
    public async Task The_memory_a_bulk_receive_fills_is_not_reused_before_its_completion_when_the_app_aborts(UringEngine engine)
    {
        const int BulkSize = ConnectionOptions.BulkReceiveSize;
        var rings = new ScriptedRing?[TestServer.RingCount];
        var readAMiB = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var abortNow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using TestServer server = await TestServer.StartAsync(engine, app => app.MapPost("/read", async context =>
        {
            // Reads on (so a receive is always armed) until told to abort; the abort ends the read.
            Task reading = Task.Run(async () =>
            {
                var buffer = new byte[64 * 1024];
                long read = 0;
                int n;
                while ((n = await context.Request.Body.ReadAsync(buffer)) > 0)
                    if ((read += n) >= MiB) readAMiB.TrySetResult();
            });
            await abortNow.Task;
            context.Abort();
            try
            {
                await reading;
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ConnectionAbortedException)
            {
            }
        }), output, new ServerSetup
        {
            Transport = o => o.MaxReadBufferSize = null, // never paused: a receive is always armed
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)),
        });

        long baseline = server.Group.Pool.RentedBytes;
        using RawConnection connection = await server.ConnectRawAsync();
        using var stopSending = new CancellationTokenSource();
        Task sender = Task.Run(async () =>
        {
            const int Length = 25_000_000; // under Kestrel's default request limit; far more than gets through
            byte[] chunk = new byte[250_000];
            try
            {
                await connection.SendAsync(RawConnection.Request("POST", "/read", $"Content-Length: {Length}"));
                for (int sent = 0; sent < Length && !stopSending.IsCancellationRequested; sent += chunk.Length)
                    await connection.Socket.SendAsync(chunk, SocketFlags.None, stopSending.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
            }
        });
        await readAMiB.Task.WaitAsync(Limits.Step);

        // From now on the transport sees no direct recv's data: the next one it arms stays, as far
        // as it knows, in the kernel, with the pipe's memory (provided-buffer receives go on).
        foreach (ScriptedRing? ring in rings) ring!.HoldWhere(c => ScriptedRing.Is(c, OpKind.Recv) && !c.HasBuffer && c.Result > 0);
        var drained = new List<IMemoryOwner<byte>>();
        try
        {
            ScriptedRing bulk = Assert.Single(rings, r => r!.DirectRecvs > 0)!;
            Assert.True(await Eventually.HoldsAsync(() => bulk.ReceivesSettled() && bulk.LastRecvWasDirect, Limits.Stop),
                "No direct receive was left in the kernel with its completion held.");
            nint inKernel = bulk.LastDirectRecvBuffer;
            // The pool's bulk size class, emptied: memory given back from now on is what the next rentals get.
            for (int i = 0; i < 40; i++) drained.Add(server.Group.Pool.Rent(BulkSize));

            abortNow.SetResult();
            Assert.True(await Eventually.HoldsAsync(() => server.Group.Loops.Sum(l => l.Counters.Aborts) > 0, Limits.Stop), "The app's abort did not reach the transport.");
            await Task.Delay(300); // Kestrel is done with the connection and has completed its input
            output.WriteLine($"recv buffer {inKernel:x}; direct recvs {bulk.DirectRecvs}, provided {bulk.Receives}; connections {server.Group.Loops.Sum(l => l.Members.Connections)}");
            Assert.Equal(1, server.Group.Loops.Sum(l => l.Members.Connections)); // its receive is still in the kernel

            // Kestrel has completed the input's reader: the pipe's memory would go back with its writer's completion.
            long held = server.Group.Pool.RentedBytes - baseline - drained.Sum(r => (long)r.Memory.Length);
            output.WriteLine($"pool bytes out with the receive held: {held}");
            Assert.True(held >= BulkSize, $"Only {held} bytes stayed out of the pool while a {BulkSize}-byte receive was in the kernel.");

            // Were the recv's memory back in the pool, the next rentals of its size would get it.
            for (int i = 0; i < 40; i++)
            {
                IMemoryOwner<byte> rental = server.Group.Pool.Rent(BulkSize);
                drained.Add(rental);
                nint start = ScriptedRing.AddressOf(rental.Memory);
                Assert.False(inKernel >= start && inKernel < start + rental.Memory.Length,
                    "The memory of a receive still in the kernel was rented out again.");
            }
        }
        finally
        {
            foreach (IMemoryOwner<byte> rental in drained) rental.Dispose();
            // The completion comes (also when an assertion failed, so the server can stop).
            foreach (ScriptedRing? ring in rings) ring!.ReleaseAt(Environment.TickCount64);
        }

        // The connection closes.
        Assert.True(await Eventually.HoldsAsync(() => server.Group.Loops.Sum(l => l.Members.Connections) == 0, Limits.Stop),
            "The connection did not close once its receive completed.");
        Assert.True(await Eventually.HoldsAsync(() => server.Group.Pool.RentedBytes <= baseline, Limits.Stop),
            $"The pool did not get the input's memory back after the receive completed: {server.Group.Pool.RentedBytes - baseline} bytes still out.");
        stopSending.Cancel();
        await sender.WaitAsync(Limits.Step);
    }
}
