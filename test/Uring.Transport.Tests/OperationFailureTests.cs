using Microsoft.AspNetCore.Http.Features;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// An operation that cannot be queued (its prepare throws: the submission queue was full and
/// io_uring_enter could not flush it) leaves no trace: nothing of it is counted as in the kernel,
/// the connection it was for is aborted and closes, and its memory goes back. The rings here fail
/// chosen prepares as such a kernel would.
/// </summary>
[Collection(ResourceCountsCollection.Name)] // pool bytes and fds must be this server's alone
public sealed class OperationFailureTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task A_connection_whose_first_receive_cannot_be_queued_is_closed_not_left_open(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await StartAsync(engine, TestData.MapPlaintext, rings);
        ServerResources baseline = await ServerResources.BaselineAsync(server);

        FailNext(rings, nameof(IRing.PrepareRecvMultishot), nameof(IRing.PrepareRecvBufferSelect));
        try
        {
            using RawConnection victim = await server.ConnectRawAsync();
            Assert.True(await Peer.SeesTheEndAsync(victim.Socket, Limits.Stop), "The connection whose receive could not be queued was never closed.");
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Reset before the client's connect returned: closed as well.
        }
        FailNext(rings, 0, nameof(IRing.PrepareRecvMultishot), nameof(IRing.PrepareRecvBufferSelect)); // the other loop's

        await baseline.AssertServerRecoveredAsync(server, output);
    }

    [Theory, Engines]
    public async Task A_send_that_cannot_be_queued_costs_its_connection_and_gives_its_memory_back(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await StartAsync(engine, TestData.MapPlaintext, rings);
        ServerResources baseline = await ServerResources.BaselineAsync(server);

        FailNext(rings, nameof(IRing.PrepareSend), nameof(IRing.PrepareSendMsg));
        using (RawConnection victim = await server.ConnectRawAsync())
        {
            await victim.SendAsync(RawConnection.Request("GET", "/plaintext"));
            Assert.True(await Peer.SeesTheEndAsync(victim.Socket, Limits.Stop), "The connection whose send could not be queued was never closed.");
        }
        FailNext(rings, 0, nameof(IRing.PrepareSend), nameof(IRing.PrepareSendMsg));

        Assert.True(await Eventually.HoldsAsync(() => server.Group.Loops.All(l => l.Sends.LentCount == 0), Limits.Stop),
            $"Sends still counted as lent: {string.Join(", ", server.Group.Loops.Select(l => l.Sends.LentCount))}.");
        await baseline.AssertServerRecoveredAsync(server, output);
    }

    [Fact]
    public async Task A_zero_copy_send_that_cannot_be_queued_costs_its_connection_which_still_closes()
    {
        if ((TestKernel.Available & RingFeatures.SendZc) == 0) return; // no zero-copy sends on this (masked) kernel
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(UringEngine.IoUring, app => app.Run(Uring.Perf.SampleEndpoints.Handle), output, new ServerSetup
        {
            Transport = o => o.ZeroCopySendThreshold = 16 * 1024,
            Environment = TestEnvironment.Suite with
            {
                KeepZeroCopy = true,
                DecorateRing = (ring, index) => rings[index] = new ScriptedRing(ring),
            },
        });
        // Kestrel's flush of the response fails with the transport's error, and says so.
        server.Logs.Allow(e => e.Exception is SocketException { Message: var m } && m.Contains("EBUSY", StringComparison.Ordinal));
        ServerResources baseline = await ServerResources.BaselineAsync(server);

        FailNext(rings, nameof(IRing.PrepareSendMsgZc));
        using (RawConnection victim = await server.ConnectRawAsync())
        {
            await victim.SendAsync(RawConnection.Request("GET", "/bytes?size=1048576"));
            Assert.True(await Peer.SeesTheEndAsync(victim.Socket, Limits.Stop), "The connection whose zero-copy send could not be queued was never closed.");
        }
        FailNext(rings, 0, nameof(IRing.PrepareSendMsgZc));

        await baseline.AssertServerRecoveredAsync(server, output);
    }

    [Theory, Engines]
    public async Task A_cancel_that_cannot_be_queued_is_asked_again_and_the_direct_receive_gives_its_memory_back(UringEngine engine)
    {
        var rings = new ScriptedRing?[1];
        var abort = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using TestServer server = await TestServer.StartAsync(engine, app =>
        {
            TestData.MapPlaintext(app);
            app.MapPost("/upload", async context =>
            {
                // Reads the body as it comes; aborts the connection when the test says so.
                Task aborted = abort.Task.ContinueWith(_ => context.Abort(), TaskScheduler.Default);
                var buffer = new byte[16 * 1024];
                try
                {
                    while (await context.Request.Body.ReadAsync(buffer) > 0) { }
                }
                catch (Exception e) when (e is IOException or OperationCanceledException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
                {
                }
                await aborted;
            });
        }, output, new ServerSetup
        {
            Transport = o => o.RingCount = 1,
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)),
        });
        ScriptedRing ring = rings[0]!;
        ServerResources baseline = await ServerResources.BaselineAsync(server);

        using (RawConnection client = await server.ConnectRawAsync())
        {
            // Bulk data: it is received straight into the input pipe. A direct receive is left in the
            // kernel, holding pipe memory: waiting on the socket once the data is in, or (should it
            // have taken the last bytes) with its completion held back.
            ring.HoldWhere(c => ScriptedRing.Is(c, OpKind.Recv) && !c.HasBuffer && c.Result > 0);
            await client.SendAsync(RawConnection.Request("POST", "/upload", "Content-Length: 1048576"));
            await client.SendAsync(TestData.Random(256 * 1024, seed: 3));
            Assert.True(await Eventually.HoldsAsync(() => ring.LastRecvWasDirect && ring.ReceivesSettled(), Limits.Step),
                $"No direct receive was left in the kernel with its completion held (held {ring.Held}, direct receives {ring.DirectRecvs}, last direct {ring.LastRecvWasDirect}).");

            ring.FailPrepares(nameof(IRing.PrepareCancel), count: 2); // the abort's cancel, and the one its close asks for again
            abort.SetResult();
            ring.ReleaseAt(Environment.TickCount64 + 300); // the receive completes after its cancel was asked for again
            Assert.True(await Peer.SeesTheEndAsync(client.Socket, Limits.Stop), "The aborted connection never closed: its receive was never cancelled.");
        }

        await baseline.AssertServerRecoveredAsync(server, output);
    }

    private Task<TestServer> StartAsync(UringEngine engine, Action<WebApplication> map, ScriptedRing?[] rings) =>
        TestServer.StartAsync(engine, map, output, new ServerSetup
        {
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)),
        });

    private static void FailNext(ScriptedRing?[] rings, params string[] prepares) => FailNext(rings, 1, prepares);

    private static void FailNext(ScriptedRing?[] rings, int count, params string[] prepares)
    {
        foreach (ScriptedRing? ring in rings)
            foreach (string prepare in prepares)
                ring!.FailPrepares(prepare, count);
    }
}
