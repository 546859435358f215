namespace Uring.Native.Tests;

public sealed unsafe class RecvTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public void Multishot_recv_with_provided_buffers_recycles_and_rearms(RingKind engine)
    {
        const ushort Group = 7;
        const int BufferCount = 8, BufferSize = 512, Total = 64 * 1024;
        const ulong Recv = 0xB0;
        using var pair = TcpPair.Create();
        using var buffers = new ProvidedBufferRing(Group, BufferCount, BufferSize);
        var payload = new byte[Total];
        new Random(5).NextBytes(payload);
        var received = new MemoryStream();
        int recycles = 0, enobufs = 0, arms = 0, endOfStream = 0;
        bool armed = false;

        using (var driver = RingDriver.Create(engine))
        {
            var ring = driver.Ring;
            int registered = ring.RegisterBufferRing(buffers);
            Assert.True(registered == 0, $"RegisterBufferRing returned {Errno.Describe(registered)}.");
            try
            {
                void Arm()
                {
                    ring.PrepareRecvMultishot(pair.ServerFd, Group, Recv);
                    armed = true;
                    arms++;
                }

                void OnCompletion(Completion c)
                {
                    Assert.True(c.UserData == Recv, $"Unexpected completion {RingDriver.Describe(c)}");
                    Assert.True(armed, $"Completion after the multishot had already ended: {RingDriver.Describe(c)}");
                    if (c.Result > 0)
                    {
                        Assert.True(c.HasBuffer, $"Data without a provided buffer: {RingDriver.Describe(c)}");
                        Assert.True(c.BufferId < BufferCount && c.Result <= BufferSize, $"Bad buffer/length: {RingDriver.Describe(c)}");
                        received.Write(buffers.GetSpan(c.BufferId, c.Result));
                        buffers.Recycle(c.BufferId);
                        recycles++;
                    }
                    else if (c.Result == 0)
                    {
                        Assert.False(c.HasMore, $"End of stream flagged MORE: {RingDriver.Describe(c)}");
                        endOfStream++;
                    }
                    else
                    {
                        Assert.True(c.Result == -Errno.ENOBUFS && !c.HasMore, $"Unexpected recv failure: {RingDriver.Describe(c)}");
                        enobufs++;
                    }

                    if (!c.HasMore)
                    {
                        armed = false;
                        if (c.Result != 0) Arm(); // ENOBUFS or a final data completion: re-arm, as the transport does
                    }
                }

                Arm();
                ring.SubmitAndWait(0, 0);
                var sender = PeerThread.Start("sender", () => pair.Client.Send(payload));
                driver.PumpUntil(() => received.Length >= Total, $"{Total} bytes (have {received.Length})", OnCompletion);
                sender.Join();

                Bytes.AssertEqual(payload, received.ToArray(), "multishot recv");
                Assert.True(enobufs > 0 || recycles >= Total / BufferSize,
                    $"{Total} bytes should need {Total / BufferSize} recycles of an {BufferCount}-buffer ring (recycles {recycles}, ENOBUFS {enobufs}).");
                Assert.True(recycles >= Total / BufferSize, $"recycles {recycles} < {Total / BufferSize}");
                output.WriteLine($"{engine}: {recycles} buffers recycled, {enobufs} ENOBUFS, armed {arms} times.");

                pair.Client.Shutdown(SocketShutdown.Send);
                driver.PumpUntil(() => endOfStream > 0, "the end-of-stream completion (res 0)", OnCompletion);
                driver.PumpFor(50, OnCompletion);
                Assert.Equal(1, endOfStream);
                Assert.False(armed);
            }
            finally
            {
                int unregistered = ring.UnregisterBufferRing(buffers);
                Assert.True(unregistered == 0, $"UnregisterBufferRing returned {Errno.Describe(unregistered)}.");
            }
        }
    }

    [Theory, Engines]
    public void Recv_with_buffer_select_fills_a_provided_buffer(RingKind engine)
    {
        const ushort Group = 3;
        const ulong Recv = 0xB1;
        using var pair = TcpPair.Create();
        using var buffers = new ProvidedBufferRing(Group, 4, 256);
        var payload = new byte[100];
        new Random(11).NextBytes(payload);

        using (var driver = RingDriver.Create(engine))
        {
            Assert.Equal(0, driver.Ring.RegisterBufferRing(buffers));
            driver.Ring.PrepareRecvBufferSelect(pair.ServerFd, Group, Recv);
            driver.Ring.SubmitAndWait(0, 0);
            pair.Client.Send(payload);

            var recv = driver.WaitFor(Recv, "the buffer-select recv");
            driver.PumpFor(20);

            Assert.True(recv.Result == payload.Length && recv.HasBuffer && !recv.HasMore && recv.BufferId < 4,
                $"Unexpected completion: {RingDriver.Describe(recv)}");
            Bytes.AssertEqual(payload, buffers.GetSpan(recv.BufferId, recv.Result), "buffer-select recv");
            Assert.Equal(1, driver.Count(Recv));
            Assert.Equal(0, driver.Ring.UnregisterBufferRing(buffers));
        }
    }

    [Theory, Engines]
    public void Cancel_of_a_pending_recv_completes_it_with_ECANCELED_and_leaves_the_data(RingKind engine)
    {
        const ulong Recv = 0xC1, Cancel = 0xC2;
        using var pair = TcpPair.Create();
        using (var driver = RingDriver.Create(engine))
        {
            var buffer = new NativeBuffer(4096);
            try
            {
                driver.Ring.PrepareRecv(pair.ServerFd, buffer.Pointer, buffer.Length, Recv);
                driver.PumpFor(20); // submitted and parked: no data is coming
                Assert.True(driver.Seen.Count == 0, $"The recv completed with no data sent. {driver.History()}");

                driver.Ring.PrepareCancel(Recv, Cancel);
                driver.WaitForAll("the recv and the cancel", Recv, Cancel);

                var recv = driver.Single(Recv);
                var cancel = driver.Single(Cancel);
                Assert.True(recv.Result == -Errno.ECANCELED && !recv.HasMore, $"recv: {RingDriver.Describe(recv)}");
                Assert.True(cancel.Result == 0, $"cancel: {RingDriver.Describe(cancel)}");
            }
            finally
            {
                buffer.Dispose(); // the recv has had its final completion: the kernel must be done with it
            }

            pair.Client.Send(new byte[] { 1, 2, 3, 4, 5 });
            driver.PumpFor(200);
            Assert.True(driver.Count(Recv) == 1, $"The cancelled recv completed again. {driver.History()}");
            Assert.Equal(2, driver.Seen.Count);
        }

        // Nothing consumed the bytes: they are still in the socket.
        var readable = new PollFd { Fd = pair.ServerFd, Events = (short)Linux.POLLIN };
        Assert.Equal(1, Libc.poll(&readable, 1, 2000));
        byte* data = stackalloc byte[16];
        Assert.Equal(5, (int)Libc.recv(pair.ServerFd, data, 16, 0));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, new ReadOnlySpan<byte>(data, 5).ToArray());
    }
}
