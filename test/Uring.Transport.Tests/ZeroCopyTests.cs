using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// Large sends go zero-copy (IORING_OP_SENDMSG_ZC) on the io_uring engine, where the kernel reports
/// whether it copied anyway. The memory of a zero-copy send goes back to the pool only at its
/// notification, however early the pipe gives it back. On loopback the kernel copies: one
/// zero-copy send per connection, then plain sends. Off by default (ZeroCopySendThreshold 0).
/// </summary>
[Collection(ResourceCountsCollection.Name)] // pool bytes must be this server's alone
public sealed class ZeroCopyTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;
    private const int Threshold = 16 * 1024;

    private static bool KernelHasIt =>
        (TestKernel.Available & RingFeatures.SendZc) != 0;

    [Fact]
    public async Task On_loopback_a_connection_sends_zero_copy_once_then_plain_after_the_kernel_reports_the_copy()
    {
        if (!KernelHasIt) return; // nothing to check on a kernel without zero-copy usage reports (xunit 2 has no dynamic skip)
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await StartAsync(rings, Threshold, keepZeroCopy: false);

        using RawConnection connection = await server.ConnectRawAsync();
        for (int i = 0; i < 3; i++)
        {
            await connection.SendAsync(RawConnection.Request("GET", "/bytes?size=1048576"));
            RawResponse response = await connection.ReadResponseAsync();
            Assert.Equal(MiB, response.Body.Length);
            Uring.Perf.SampleEndpoints.AssertPattern(response.Body);
        }
        int zeroCopy = rings.Sum(r => r!.ZeroCopySends);
        output.WriteLine($"zero-copy sends for 3 x 1 MiB on one connection: {zeroCopy}");
        Assert.InRange(zeroCopy, 1, 4); // the first, and those already on their way when the report came
    }

    [Fact]
    public async Task By_default_no_send_is_zero_copy()
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await StartAsync(rings, threshold: null, keepZeroCopy: false);
        using RawConnection connection = await server.ConnectRawAsync();
        await connection.SendAsync(RawConnection.Request("GET", "/bytes?size=1048576"));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(MiB, response.Body.Length);
        Assert.Equal(0, rings.Sum(r => r!.ZeroCopySends));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    public async Task Zero_copy_downloads_arrive_intact(int mebibytes)
    {
        if (!KernelHasIt) return;
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await StartAsync(rings, Threshold, keepZeroCopy: true); // every large send zero-copy, though loopback copies
        using RawConnection connection = await server.ConnectRawAsync();
        await connection.SendAsync(RawConnection.Request("GET", $"/bytes?size={mebibytes * MiB}"));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(mebibytes * MiB, response.Body.Length);
        Uring.Perf.SampleEndpoints.AssertPattern(response.Body);
        Assert.True(rings.Sum(r => r!.ZeroCopySends) > 1, "The download went without zero-copy sends.");
    }

    [Fact]
    public async Task A_zero_copy_sends_memory_returns_to_the_pool_only_at_its_notification()
    {
        if (!KernelHasIt) return;
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await StartAsync(rings, Threshold, keepZeroCopy: true);
        await ServerResources.AssertServesAsync(server);
        long baseline = server.Group.Pool.RentedBytes;

        // The kernel's notifications are held back: as far as the transport knows, it still reads the pages.
        foreach (ScriptedRing? ring in rings) ring!.HoldWhere(c => (c.Flags & CompletionFlags.Notification) != 0);
        using RawConnection connection = await server.ConnectRawAsync();
        await connection.SendAsync(RawConnection.Request("GET", "/bytes?size=262144"));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(256 * 1024, response.Body.Length);
        await Task.Delay(200); // the app is done and the pipe has given its blocks back
        long held = server.Group.Pool.RentedBytes - baseline;
        output.WriteLine($"pool bytes still out with the notifications held: {held}");
        Assert.True(held >= 64 * 1024, $"Only {held} bytes stayed out of the pool while their zero-copy sends were unnotified.");

        foreach (ScriptedRing? ring in rings) ring!.ReleaseAt(Environment.TickCount64);
        Assert.True(await Eventually.HoldsAsync(() => server.Group.Pool.RentedBytes <= baseline, Limits.Stop),
            $"The pool did not get its blocks back after the notifications: {server.Group.Pool.RentedBytes - baseline} bytes still out.");
    }

    /// <summary>The sample app on io_uring, each loop's ring scripted into <paramref name="rings"/>; threshold null: the default.</summary>
    private Task<TestServer> StartAsync(ScriptedRing?[] rings, int? threshold, bool keepZeroCopy) =>
        TestServer.StartAsync(UringEngine.IoUring, app => app.Run(Uring.Perf.SampleEndpoints.Handle), output, new ServerSetup
        {
            Transport = o =>
            {
                if (threshold is int t) o.ZeroCopySendThreshold = t;
            },
            Environment = TestEnvironment.Suite with
            {
                KeepZeroCopy = keepZeroCopy,
                DecorateRing = (ring, index) => rings[index] = new ScriptedRing(ring),
            },
        });
}
