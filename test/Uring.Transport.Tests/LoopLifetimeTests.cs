using System.Globalization;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Uring.Transport.Client;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// An I/O loop's edges: work that reaches a stopped loop, a stop that outlasts its grace, a kernel
/// that never finishes an operation, a ring that keeps failing. Each costs the work or the loop
/// concerned, never a leaked fd, freed memory the kernel may use, or a waiter that waits forever.
/// </summary>
[Collection(ResourceCountsCollection.Name)] // counts the process's sockets
public sealed class LoopLifetimeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(2);

    [Theory, Engines]
    public async Task Work_that_reaches_a_stopped_loop_runs_its_failure_path(UringEngine engine)
    {
        var options = new UringTransportOptions { Engine = engine, RingCount = 1 };
        IoLoopGroup group = await IoLoopGroup.StartAsync(options, new LogCollector().CreateLogger(UringLog.Category), TestEnvironment.Suite);
        IoLoop loop = group.Loops[0];
        await group.StopAsync();

        var outcome = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(_ => outcome.TrySetResult("ran on the loop"), null, _ => outcome.TrySetResult("failure path"));
        Assert.Equal("failure path", await outcome.Task.WaitAsync(Short));

        // A pipe continuation handed to the stopped loop still runs (on the thread pool).
        var continuation = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Schedule(_ => continuation.TrySetResult(), null);
        await continuation.Task.WaitAsync(Short);
    }

    [Theory, Engines]
    public async Task A_connect_started_on_a_stopped_loop_fails_instead_of_waiting_forever(UringEngine engine)
    {
        using Socket peer = ListenOnLoopback();
        var options = new UringTransportOptions { Engine = engine, RingCount = 1 };
        IoLoopGroup group = await IoLoopGroup.StartAsync(options, new LogCollector().CreateLogger(UringLog.Category), TestEnvironment.Suite);
        await group.StopAsync();

        Task<UringConnection> connect = ConnectOperation.StartAsync(group, peer.LocalEndPoint!, options, CancellationToken.None);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => connect.WaitAsync(Short));
    }

    [Theory, Engines]
    public async Task A_connect_that_cannot_be_queued_closes_its_socket_and_fails(UringEngine engine)
    {
        using Socket peer = ListenOnLoopback();
        var options = new UringTransportOptions { Engine = engine, RingCount = 1 };
        ScriptedRing? ring = null;
        IoLoopGroup group = await IoLoopGroup.StartAsync(options, new LogCollector().CreateLogger(UringLog.Category),
            TestEnvironment.Decorated((inner, _) => ring = new ScriptedRing(inner)));
        try
        {
            ring!.FailPrepares(nameof(IRing.PrepareConnect));
            int sockets = CountSockets();

            Task<UringConnection> connect = ConnectOperation.StartAsync(group, peer.LocalEndPoint!, options, CancellationToken.None);
            var error = await Assert.ThrowsAsync<RingException>(() => connect.WaitAsync(Short));
            Assert.Contains("EBUSY", error.Message);
            Assert.Equal(sockets, CountSockets());
        }
        finally
        {
            await group.StopAsync();
        }
    }

    [Theory, Engines]
    public async Task A_stop_that_outlasts_its_grace_still_submits_the_close_it_prepared_last(UringEngine engine)
    {
        var holders = new ScriptedRing?[1];
        var logs = new LogCollector();
        (IoLoopGroup group, UringConnection connection, Socket peer) = await ConnectThroughScriptedRingAsync(engine, holders, logs);
        using (peer)
        {
            int sockets = CountSockets();
            // The stop cancels the connection's receive; the kernel's answer is held until just past the
            // 5 s grace, so the connection prepares its close in the loop's last iteration of the grace.
            holders[0]!.HoldWhere(c => ScriptedRing.Is(c, OpKind.Recv));
            long stopAt = Environment.TickCount64;
            holders[0]!.ReleaseAt(stopAt + 5000 + 60);
            Task stopping = group.StopAsync();

            Assert.True(await Peer.SeesTheEndAsync(peer, TimeSpan.FromSeconds(12)), "The peer never saw the connection end: its close was never submitted.");
            await stopping.WaitAsync(TimeSpan.FromSeconds(12));
            await connection.Closed.WaitAsync(Short);
            Assert.True(CountSockets() < sockets, $"The connection's socket is still open ({CountSockets()} sockets, {sockets} before the stop).");
            Assert.DoesNotContain(logs.Entries, e => e.EventId.Id == 26); // nothing was left in the kernel: buffers freed
        }
    }

    [Theory, Engines]
    public async Task A_loop_whose_kernel_never_finishes_an_operation_closes_the_fd_and_keeps_the_receive_buffers(UringEngine engine)
    {
        var holders = new ScriptedRing?[1];
        var logs = new LogCollector();
        (IoLoopGroup group, UringConnection connection, Socket peer) = await ConnectThroughScriptedRingAsync(engine, holders, logs);
        using (peer)
        {
            IoLoop loop = group.Loops[0];
            holders[0]!.HoldWhere(c => ScriptedRing.Is(c, OpKind.Recv)); // the receive's final completion never comes
            var clock = Stopwatch.StartNew();
            await group.StopAsync().WaitAsync(TimeSpan.FromSeconds(15));
            output.WriteLine($"stopped after {clock.Elapsed.TotalSeconds:F1} s");

            Assert.True(await Peer.SeesTheEndAsync(peer, Short), "The connection's fd was not closed when the loop gave up on it.");
            await connection.Closed.WaitAsync(Short);
            var kept = Assert.Single(logs.Entries, e => e.EventId.Id == 26);
            output.WriteLine(kept.ToString());
            Assert.NotEqual(0, loop.Buffers.Ring.RingAddress); // not freed: the kernel might still write into it
        }
    }

    [Theory, Engines]
    public async Task A_loop_that_fails_with_a_bulk_receive_in_the_kernel_never_rents_out_its_memory_again(UringEngine engine)
    {
        const int BulkSize = ConnectionOptions.BulkReceiveSize;
        var holders = new ScriptedRing?[1];
        var logs = new LogCollector();
        // No read limit: the input never pauses, so a receive is always armed.
        (IoLoopGroup group, UringConnection connection, Socket peer) = await ConnectThroughScriptedRingAsync(engine, holders, logs, maxReadBufferSize: null);
        var drained = new List<System.Buffers.IMemoryOwner<byte>>();
        using (peer)
        try
        {
            ScriptedRing ring = holders[0]!;
            // The app reads everything, and is done with the input when it ends (as Kestrel is); the
            // peer sends bulk data until the connection ends.
            Task reading = Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        ReadResult read = await connection.Transport.Input.ReadAsync();
                        connection.Transport.Input.AdvanceTo(read.Buffer.End);
                        if (read.IsCompleted) return;
                    }
                }
                finally
                {
                    connection.Transport.Input.Complete();
                }
            });
            Task sending = Task.Run(async () =>
            {
                byte[] chunk = new byte[256 * 1024];
                var clock = Stopwatch.StartNew();
                try
                {
                    while (clock.Elapsed < Limits.Step) await peer.SendAsync(chunk, SocketFlags.None); // until the connection ends
                }
                catch (SocketException)
                {
                }
            });
            Assert.True(await Eventually.HoldsAsync(() => ring.DirectRecvs > 4, Limits.Step), "The bulk data was not received straight into the input.");

            ring.HoldWhere(c => ScriptedRing.Is(c, OpKind.Recv) && !c.HasBuffer && c.Result > 0);
            Assert.True(await Eventually.HoldsAsync(() => ring.ReceivesSettled() && ring.LastRecvWasDirect, Limits.Stop),
                "No direct receive was left in the kernel with its completion held.");
            nint inKernel = ring.LastDirectRecvBuffer;
            // The pool's bulk size class, emptied: memory given back from now on is what the next rentals get.
            for (int i = 0; i < 40; i++) drained.Add(group.Pool.Rent(BulkSize));

            ring.FailSubmitsWith(-Errno.EBADR); // the loop fails with that recv, as far as it knows, in the kernel
            await connection.Closed.WaitAsync(Limits.Stop);
            await reading.WaitAsync(Limits.Step).ContinueWith(_ => { }); // the input ends (with the loop's error)
            for (int i = 0; i < 40; i++)
            {
                System.Buffers.IMemoryOwner<byte> rental = group.Pool.Rent(BulkSize);
                drained.Add(rental);
                nint start = ScriptedRing.AddressOf(rental.Memory);
                Assert.False(inKernel >= start && inKernel < start + rental.Memory.Length,
                    "The memory of a receive the failed loop left in the kernel was rented out again.");
            }
            await sending.WaitAsync(Limits.Step);
        }
        finally
        {
            foreach (System.Buffers.IMemoryOwner<byte> rental in drained) rental.Dispose();
            await group.StopAsync();
        }
    }

    [Theory, Engines]
    public async Task A_ring_whose_submits_keep_failing_costs_its_loop_only_and_the_listener_moves(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapLoopIndex, output, new ServerSetup
        {
            Transport = o => o.ListenerSharding = false, // one acceptor: on loop 1's failure it must move to loop 0
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)),
        });
        server.Logs.Allow(e => e.EventId.Id is 24 or 23); // the failure itself, logged once each
        var onLoop = new RawConnection?[TestServer.RingCount];
        var extra = new List<RawConnection>();
        try
        {
            while (onLoop.Any(c => c is null))
            {
                RawConnection connection = await server.ConnectRawAsync();
                int index = int.Parse(await GetAsync(connection, "/loop"), CultureInfo.InvariantCulture);
                if (onLoop[index] is null) onLoop[index] = connection;
                else extra.Add(connection);
            }
            // The acceptor is on one of the two loops: fail that one.
            int acceptorLoop = server.Group.Loops.Single(HasAcceptor).Index;
            int other = 1 - acceptorLoop;
            rings[acceptorLoop]!.FailSubmitsWith(-Errno.EBADR);

            Assert.True(await Peer.SeesTheEndAsync(onLoop[acceptorLoop]!.Socket, Short), "The failed loop's connection was not closed.");
            Assert.Equal(other.ToString(CultureInfo.InvariantCulture), await GetAsync(onLoop[other]!, "/loop"));
            for (int i = 0; i < 10; i++)
            {
                using RawConnection fresh = await server.ConnectRawAsync();
                Assert.Equal(other.ToString(CultureInfo.InvariantCulture), await GetAsync(fresh, "/loop"));
            }
            Assert.Single(server.Logs.Entries, e => e.EventId.Id == 24);
            Assert.True(server.Logs.Entries.Count(e => e.EventId.Id == 23) <= 1, "io_uring_enter's failure was logged more than once.");
        }
        finally
        {
            foreach (RawConnection? c in onLoop) c?.Dispose();
            foreach (RawConnection c in extra) c.Dispose();
        }
    }

    [Theory, Engines]
    public async Task A_loop_that_fails_with_an_accepted_connection_in_its_completion_queue_hands_it_to_a_running_loop(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapLoopIndex, output, new ServerSetup
        {
            Transport = o => o.ListenerSharding = false, // one acceptor, on the loop that fails
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring)),
        });
        server.Logs.Allow(e => e.EventId.Id is 24 or 23); // the failure itself
        int acceptorLoop = server.Group.Loops.Single(HasAcceptor).Index;
        ScriptedRing ring = rings[acceptorLoop]!;

        // The kernel accepts a connection and posts its completion; the loop has not read it when its
        // ring fails. The fd is the process's already: served (or at least closed), never leaked.
        ring.HoldWhere(c => ScriptedRing.Is(c, OpKind.Accept) && c.Result >= 0);
        using RawConnection client = await server.ConnectRawAsync();
        Assert.True(await Eventually.HoldsAsync(() => ring.Held > 0, Limits.Step), "The accept's completion never came.");
        ring.FailSubmitsWith(-Errno.EBADR, releaseHeld: true);

        string servedBy = await GetAsync(client, "/loop").WaitAsync(Limits.Stop);
        Assert.Equal((1 - acceptorLoop).ToString(CultureInfo.InvariantCulture), servedBy);
    }

    [Fact]
    public async Task A_failed_loops_accept_is_cancelled_in_the_kernel_before_its_listener_moves()
    {
        // Before 6.0 (no IORING_REGISTER_SYNC_CANCEL) the kernel's asynchronous ring teardown cancels
        // it; until that has run, a connection may wake the dead accept instead of the new one.
        if ((TestKernel.Available & RingFeatures.SyncCancel) == 0) return;
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(UringEngine.IoUring, TestData.MapLoopIndex, output, new ServerSetup
        {
            Transport = o => o.ListenerSharding = false,
            // The kernel tears a closed ring down in the background: here it takes 3 s.
            Environment = TestEnvironment.Decorated((ring, index) => rings[index] = new ScriptedRing(ring).OutliveDispose(TimeSpan.FromSeconds(3))),
        });
        server.Logs.Allow(e => e.EventId.Id is 24 or 23);
        int acceptorLoop = server.Group.Loops.Single(HasAcceptor).Index;
        IoLoop other = server.Group.Loops[1 - acceptorLoop];

        rings[acceptorLoop]!.FailSubmitsWith(-Errno.EBADR);
        Assert.True(await Eventually.HoldsAsync(() => HasAcceptor(other), Limits.Stop), "The listener did not move to the running loop.");

        // Meanwhile the failed ring still exists: every new connection is served by the running loop at once.
        for (int i = 0; i < 5; i++)
        {
            using RawConnection fresh = await server.ConnectRawAsync();
            Assert.Equal(other.Index.ToString(CultureInfo.InvariantCulture), await GetAsync(fresh, "/loop").WaitAsync(TimeSpan.FromSeconds(1)));
        }
        // (The stop then closes the port at once: the cancelled accept let go of the listening socket.)
    }

    [Fact]
    public async Task A_zero_copy_sends_memory_stays_rooted_when_its_loop_fails_before_the_notification()
    {
        if ((TestKernel.Available & RingFeatures.SendZc) == 0) return; // no zero-copy sends on this (masked) kernel
        WeakReference sent = await SendZeroCopyAndFailTheLoopBeforeItsNotificationAsync();
        for (int i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        Assert.True(sent.IsAlive, "The memory of a zero-copy send whose notification never came was collected: the kernel might still read its pages.");
    }

    // Separate, so that nothing of its frame keeps the memory alive.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private async Task<WeakReference> SendZeroCopyAndFailTheLoopBeforeItsNotificationAsync()
    {
        const int Size = 64 * 1024;
        var holders = new ScriptedRing?[1];
        (IoLoopGroup group, UringConnection connection, Socket peer) = await ConnectThroughScriptedRingAsync(
            UringEngine.IoUring, holders, new LogCollector(), zeroCopySendThreshold: 16 * 1024);
        using (peer)
        {
            ScriptedRing ring = holders[0]!;
            ring.HoldWhere(c => (c.Flags & CompletionFlags.Notification) != 0);

            // The send's memory: one rental of the pool's, the pipe's segment.
            Memory<byte> memory = connection.Transport.Output.GetMemory(Size);
            Assert.True(MemoryMarshal.TryGetArray<byte>(memory, out ArraySegment<byte> array));
            var sent = new WeakReference(array.Array);
            memory.Span.Slice(0, Size).Fill(7);
            connection.Transport.Output.Advance(Size);
            await connection.Transport.Output.FlushAsync();

            var received = new byte[Size];
            for (int n = 0; n < Size;) n += await peer.ReceiveAsync(received.AsMemory(n), SocketFlags.None).AsTask().WaitAsync(Limits.Step);
            Assert.True(await Eventually.HoldsAsync(() => ring.Held > 0, Limits.Step), "The zero-copy send's notification never came.");
            Assert.True(ring.ZeroCopySends > 0, "The send did not go zero-copy.");

            ring.FailSubmitsWith(-Errno.EBADR); // the loop fails with the notification outstanding
            await connection.Closed.WaitAsync(Limits.Stop);
            await connection.DisposeAsync();
            await group.StopAsync().WaitAsync(Limits.Stop);
            return sent;
        }
    }

    [Theory, Engines]
    public async Task A_flush_held_by_a_peer_that_never_reads_completes_when_its_loop_fails(UringEngine engine)
    {
        var holders = new ScriptedRing?[1];
        var logs = new LogCollector();
        (IoLoopGroup group, UringConnection connection, Socket peer) = await ConnectThroughScriptedRingAsync(engine, holders, logs);
        using (peer)
        {
            // The peer reads nothing: writes fill the kernel's buffers, then the output pipe, then the flush waits.
            // (The kernel's buffers grow for a while, and a busy machine drains slowly: a flush counts
            // as held once it has waited 300 ms and then 1 s more.)
            PipeWriter output = connection.Transport.Output;
            byte[] chunk = new byte[64 * 1024];
            Task<FlushResult>? held = null;
            for (int i = 0; i < 4096 && held is null; i++)
            {
                Task<FlushResult> flush = output.WriteAsync(chunk).AsTask();
                if (await Task.WhenAny(flush, Task.Delay(300)) != flush && await Task.WhenAny(flush, Task.Delay(1000)) != flush)
                    held = flush;
            }
            Assert.True(held is not null, "The writes never had to wait: the peer's buffers took 256 MiB.");

            holders[0]!.FailSubmitsWith(-Errno.EBADR);
            FlushResult result = await held.WaitAsync(Short);
            Assert.True(result.IsCompleted, "The flush returned, but not with the end of the output.");
            await connection.Closed.WaitAsync(Short);
            await group.StopAsync().WaitAsync(Short);
        }
    }

    // ---- helpers -------------------------------------------------------------------------------


    private static bool HasAcceptor(IoLoop loop) => loop.Members.CountWhere(h => h is Acceptor) > 0;

    private static async Task<string> GetAsync(RawConnection connection, string path)
    {
        await connection.SendAsync(RawConnection.Request("GET", path));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        return response.BodyText;
    }

    private static async Task<(IoLoopGroup, UringConnection, Socket)> ConnectThroughScriptedRingAsync(
        UringEngine engine, ScriptedRing?[] holders, LogCollector logs, long? maxReadBufferSize = 1024 * 1024, int zeroCopySendThreshold = 0)
    {
        using Socket listener = ListenOnLoopback();
        var options = new UringTransportOptions
        {
            Engine = engine,
            RingCount = 1,
            MaxReadBufferSize = maxReadBufferSize,
            ZeroCopySendThreshold = zeroCopySendThreshold,
        };
        IoLoopGroup group = await IoLoopGroup.StartAsync(options, logs.CreateLogger(UringLog.Category), TestEnvironment.Suite with
        {
            KeepZeroCopy = true,
            DecorateRing = (ring, index) => holders[index] = new ScriptedRing(ring),
        });
        Task<UringConnection> connecting = ConnectOperation.StartAsync(group, listener.LocalEndPoint!, options, CancellationToken.None);
        Socket peer = await listener.AcceptAsync().WaitAsync(Limits.Step);
        UringConnection connection = await connecting.WaitAsync(Limits.Step);
        return (group, connection, peer);
    }

    private static Socket ListenOnLoopback()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(16);
        return socket;
    }

    private static int CountSockets() => OpenFiles.List().Values.Count(t => t.StartsWith("socket:", StringComparison.Ordinal));
}
