using Microsoft.Extensions.Logging.Abstractions;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// The loop's pool of send operations (the iovecs and pins of a send in flight): sends reuse them under
/// steady load, however many are in flight at once, and a burst's peak is freed afterwards, also on
/// a loop that has nothing else to do.
/// </summary>
[Collection(ResourceCountsCollection.Name)]
public sealed class SendOperationPoolTests(ITestOutputHelper output)
{
    private const int Window = (int)SendOperationPool.WindowMilliseconds;

    [Fact]
    public void Sends_reuse_their_slots_at_a_steady_load_above_the_minimum_spare_count()
    {
        var pool = NewPool();
        const int InFlight = 4 * SendOperationPool.MinSpare;
        try
        {
            long now = 0;
            for (int round = 0; round < 50; round++, now += Window / 10) // five windows
            {
                RentAllThenReturnAll(pool, InFlight);
                pool.Tick(now);
            }
            Assert.Equal(InFlight, pool.Created);
            Assert.Equal(InFlight, pool.SpareCount);
        }
        finally
        {
            pool.Free();
        }
    }

    [Fact]
    public void A_bursts_slots_are_freed_down_to_the_minimum_one_window_after_the_window_of_the_burst()
    {
        var pool = NewPool();
        try
        {
            pool.Tick(0);
            RentAllThenReturnAll(pool, 500);
            Assert.Equal(500, pool.SpareCount);
            Assert.True(pool.HoldsExcess);

            pool.Tick(Window - 1);
            Assert.Equal(500, pool.SpareCount); // the window is not over
            pool.Tick(Window);
            Assert.Equal(500, pool.SpareCount); // kept for the window after the burst
            pool.Tick(2 * Window);
            Assert.Equal(SendOperationPool.MinSpare, pool.SpareCount);
            Assert.False(pool.HoldsExcess);
        }
        finally
        {
            pool.Free();
        }
    }

    [Theory, Engines]
    public async Task An_idle_loop_frees_the_spare_slots_of_a_burst_of_blocked_sends(UringEngine engine)
    {
        // 16 MiB: more than a peer's receive buffer and the server's send buffer however far they grow.
        const int Peers = 2 * SendOperationPool.MinSpare, Total = 16 * 1024 * 1024, Chunk = 64 * 1024;
        await using TestServer server = await TestServer.StartAsync(engine, app =>
        {
            TestData.MapPlaintext(app);
            app.MapGet("/big", async context =>
            {
                context.Response.ContentLength = Total;
                byte[] chunk = new byte[Chunk];
                for (int i = 0; i < Total / Chunk; i++)
                    await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            });
        }, output, new ServerSetup { Transport = o => o.RingCount = 1 });
        SendOperationPool pool = server.Group.Loops[0].Sends;

        // Peers that read nothing: each connection's send stays in the kernel, holding its slot.
        var peers = new List<RawConnection>();
        try
        {
            for (int i = 0; i < Peers; i++)
            {
                RawConnection peer = await server.ConnectRawAsync(s => s.ReceiveBufferSize = 16 * 1024);
                peers.Add(peer);
                await peer.SendAsync(RawConnection.Request("GET", "/big"));
            }
            Assert.True(await Eventually.HoldsAsync(() => pool.LentCount >= Peers, Limits.Step),
                $"Only {pool.LentCount} of {Peers} sends were in flight at once.");
        }
        finally
        {
            foreach (RawConnection peer in peers) peer.Reset();
            foreach (RawConnection peer in peers) peer.Dispose();
        }

        // The failed sends give their slots back; the pool keeps them (a trim frees them later, not the
        // return), then frees all but the minimum although no connection does anything more.
        Assert.True(await Eventually.HoldsAsync(() => pool.LentCount == 0, Limits.Step),
            $"After the peers reset: {pool.LentCount} slots still lent.");
        Assert.True(await Eventually.HoldsAsync(() => pool.SpareCount <= SendOperationPool.MinSpare, TimeSpan.FromMilliseconds(8 * Window)),
            $"{pool.SpareCount} spare slots were still held {8 * Window} ms after the burst, on an idle loop.");
        output.WriteLine($"slots allocated: {pool.Created}; trimmed: {pool.Trimmed}; spare now: {pool.SpareCount}");
        Assert.True(pool.Trimmed >= Peers - SendOperationPool.MinSpare,
            $"Only {pool.Trimmed} slots were freed by a window's trim: the returns freed the rest at once.");
        await ServerResources.AssertServesAsync(server);
    }

    /// <summary>Sends in flight at once: <paramref name="count"/> lent together, then all back.</summary>
    private static void RentAllThenReturnAll(SendOperationPool pool, int count)
    {
        SendOperation[] lent = Enumerable.Range(0, count).Select(_ => pool.Rent()).ToArray();
        foreach (SendOperation send in lent) pool.Return(send);
    }

    /// <summary>A pool of a loop that never starts: only its operations' memory is used.</summary>
    private static SendOperationPool NewPool()
    {
        var loop = new IoLoop(0, new LoopSettings(UringEngine.Epoll, 8, RingFeatures.None, 1, 512, 0, TestEnvironment.Suite), NullLogger.Instance);
        return new SendOperationPool(() => new SendOperation(loop));
    }
}
