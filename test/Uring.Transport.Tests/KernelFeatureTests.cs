namespace Uring.Transport.Tests;

/// <summary>
/// Older kernels lose features, not correctness: the transport uses a feature only when its ring
/// reports it, and otherwise its fallback. The rings here hide a feature and answer its operation
/// with EINVAL, as a kernel without it does. (The whole suite also runs under a reduced feature
/// set: URING_TEST_KERNEL=5.19, see ./build.sh test.)
/// </summary>
public sealed class KernelFeatureTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Without_multishot_receive_requests_are_served_with_one_receive_per_arm(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output, new ServerSetup
        {
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring).Hide(RingFeatures.MultishotRecv)),
        });

        await ServeAsync(server);

        int multishot = rings.Sum(r => r!.MultishotRecvs), single = rings.Sum(r => r!.SingleRecvs);
        output.WriteLine($"receives prepared: {single} single-shot, {multishot} multishot");
        Assert.Equal(0, multishot);
        Assert.True(single > 0);
    }

    [Theory, Engines]
    public async Task Without_multishot_accept_connections_are_accepted_one_accept_at_a_time(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output, new ServerSetup
        {
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring).Hide(RingFeatures.MultishotAccept)),
        });

        await ServeAsync(server);

        int multishot = rings.Sum(r => r!.MultishotAccepts), single = rings.Sum(r => r!.SingleAccepts);
        output.WriteLine($"accepts prepared: {single} single-shot, {multishot} multishot");
        Assert.Equal(0, multishot);
        Assert.True(single >= 10);
    }

    [Fact]
    public async Task The_engine_log_line_names_the_kernel_features_in_use()
    {
        await using TestServer server = await TestServer.StartAsync(UringEngine.IoUring, TestData.MapPlaintext, output);
        LogCollector.Entry line = Assert.Single(server.Logs.Entries, e => e.EventId.Id == 1);
        Assert.Contains("features ", line.Message);
        Assert.Contains("setup flags ", line.Message);
        if ((TestKernel.Available & RingFeatures.MultishotAccept) != 0)
            Assert.Contains(nameof(RingFeatures.MultishotAccept), line.Message);
    }

    // Keep-alive requests on a few connections, then one request per connection.
    private static async Task ServeAsync(TestServer server)
    {
        for (int c = 0; c < 3; c++)
        {
            using RawConnection connection = await server.ConnectRawAsync();
            for (int i = 0; i < 10; i++)
            {
                await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
                Assert.Equal("Hello, World!", (await connection.ReadResponseAsync()).BodyText);
            }
        }
        for (int i = 0; i < 10; i++) await ServerResources.AssertServesAsync(server);
    }
}
