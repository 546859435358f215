namespace Uring.Native.Tests;

public sealed unsafe class SendTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public void Send_of_4_MiB_handles_short_sends_and_arrives_intact(RingEngine engine)
    {
        const int Total = 4 * 1024 * 1024;
        const ulong Send = 0xE1;
        using var pair = TcpPair.Create();
        using var payload = NativeBuffer.Random(Total, seed: 17);
        var expected = payload.Span.ToArray();
        NativeSocket.SetOption(pair.ServerFd, Linux.SOL_SOCKET, Linux.SO_SNDBUF, 16 * 1024); // makes short sends likely

        byte[]? clientGot = null;
        var reader = PeerThread.Start("reader", () => clientGot = pair.ClientReceiveExactly(Total));

        int sent = 0, sends = 0;
        using (var driver = RingDriver.Create(engine))
        {
            while (sent < Total)
            {
                driver.Seen.Clear();
                driver.Ring.PrepareSend(pair.ServerFd, payload.Pointer + sent, Total - sent, Linux.MSG_NOSIGNAL, Send);
                sends++;
                var send = driver.WaitFor(Send, $"send #{sends} at offset {sent}");
                Assert.True(send.Result > 0 && send.Result <= Total - sent, $"send #{sends} at offset {sent}: {RingDriver.Describe(send)}");
                Assert.False(send.HasMore);
                sent += send.Result;
            }
        }

        reader.Join();
        output.WriteLine($"{engine}: 4 MiB took {sends} sends.");
        Assert.Equal(Total, sent);
        Bytes.AssertEqual(expected, clientGot, $"4 MiB sent in {sends} sends");
    }

    [Theory, Engines]
    public void SendZc_produces_a_result_then_a_notification(RingEngine engine)
    {
        const int Total = 64 * 1024;
        const ulong Send = 0xE2;
        using var pair = TcpPair.Create();
        using var payload = NativeBuffer.Random(Total, seed: 23);
        var expected = payload.Span.ToArray();
        using var driver = RingDriver.Create(engine);
        if (engine == RingEngine.Epoll && !driver.Ring.Supports(IoUringOp.SendZc))
            return; // the emulation may decline zero-copy; the transport then uses plain sends

        byte[]? clientGot = null;
        var reader = PeerThread.Start("reader", () => clientGot = pair.ClientReceiveExactly(Total));

        int sent = 0;
        while (sent < Total)
        {
            driver.Seen.Clear();
            driver.Ring.PrepareSendZc(pair.ServerFd, payload.Pointer + sent, Total - sent, Linux.MSG_NOSIGNAL, -1, Send);
            driver.PumpUntil(() => driver.Seen.Any(c => (c.Flags & CompletionFlags.Notification) != 0), $"the notification for the send at {sent}");
            driver.PumpFor(20);

            var completions = driver.For(Send);
            Assert.True(completions.Count == 2, $"Expected a result and a notification. {driver.History()}");
            var (result, notification) = (completions[0], completions[1]);
            Assert.True(result.Result > 0 && result.HasMore && (result.Flags & CompletionFlags.Notification) == 0,
                $"Result completion should be positive and flagged MORE: {RingDriver.Describe(result)}");
            Assert.True(notification.Result == 0 && !notification.HasMore && (notification.Flags & CompletionFlags.Notification) != 0,
                $"Notification should be res 0, NOTIF, no MORE: {RingDriver.Describe(notification)}");
            sent += result.Result;
        }

        reader.Join();
        Bytes.AssertEqual(expected, clientGot, "zero-copy send");
    }

    [Theory, Engines]
    public unsafe void Write_fixed_sends_from_a_registered_buffer_and_refuses_memory_outside_it(RingEngine engine)
    {
        const int Size = 16 * 1024;
        const ulong Write = 0xF1, Outside = 0xF2;
        using var pair = TcpPair.Create();
        using var registered = NativeBuffer.Random(Size, seed: 31);
        using var other = NativeBuffer.Random(64, seed: 32);
        using var driver = RingDriver.Create(engine);

        Assert.Equal(0, driver.Ring.RegisterBufferTable(4));
        Assert.Equal(1, driver.Ring.UpdateBuffer(2, registered.Pointer, (nuint)Size));

        // A slice in the middle of entry 2.
        driver.Ring.PrepareWriteFixed(pair.ServerFd, registered.Pointer + 1000, 5000, 2, Write);
        var write = driver.WaitFor(Write, "the fixed write");
        Assert.True(write.Result == 5000, $"write: {RingDriver.Describe(write)}");
        Bytes.AssertEqual(registered.Span.Slice(1000, 5000).ToArray(), pair.ClientReceiveExactly(5000), "fixed write");

        // Memory that is not inside entry 2 (nor is entry 3 set): the kernel answers EFAULT.
        driver.Ring.PrepareWriteFixed(pair.ServerFd, other.Pointer, 64, 2, Outside);
        var outside = driver.WaitFor(Outside, "the write from outside the registered buffer");
        Assert.True(outside.Result == -Errno.EFAULT, $"outside: {RingDriver.Describe(outside)}");
        Assert.Equal(0, driver.Ring.UnregisterBuffers());
    }

    [Theory, Engines]
    public unsafe void SendMsgZc_sends_an_iovec_then_notifies_and_reports_the_copy_on_loopback(RingEngine engine)
    {
        const int Segment = 4096, Segments = 8, Total = Segment * Segments;
        const ulong Send = 0xE3;
        using var pair = TcpPair.Create();
        using var payload = NativeBuffer.Random(Total, seed: 24);
        using var iovecs = new NativeBuffer(Segments * sizeof(IoVec));
        using var header = new NativeBuffer(sizeof(MsgHdr));
        var iov = (IoVec*)iovecs.Pointer;
        for (int i = 0; i < Segments; i++)
        {
            // Backwards, so the data is gathered, not just sent from one span.
            iov[i].Base = payload.Pointer + (Segments - 1 - i) * Segment;
            iov[i].Length = Segment;
        }
        var msg = (MsgHdr*)header.Pointer;
        *msg = default;
        msg->Iov = iov;
        msg->IovLength = Segments;
        using var driver = RingDriver.Create(engine);

        byte[]? clientGot = null;
        var reader = PeerThread.Start("reader", () => clientGot = pair.ClientReceiveExactly(Total));
        driver.Ring.PrepareSendMsgZc(pair.ServerFd, msg, 0, Send, reportUsage: true);
        driver.PumpUntil(() => driver.Seen.Any(c => (c.Flags & CompletionFlags.Notification) != 0), "the notification");
        reader.Join();

        var completions = driver.For(Send);
        Assert.True(completions.Count == 2, $"Expected a result and a notification. {driver.History()}");
        Assert.True(completions[0].Result == Total && completions[0].HasMore, $"result: {RingDriver.Describe(completions[0])}");
        Assert.True((completions[1].Flags & CompletionFlags.Notification) != 0 && !completions[1].HasMore, $"notification: {RingDriver.Describe(completions[1])}");
        // Loopback delivers by copying: with IORING_SEND_ZC_REPORT_USAGE the notification says so.
        Assert.True((unchecked((uint)completions[1].Result) & CompletionFlags.ZeroCopyCopied) != 0, $"notification: {RingDriver.Describe(completions[1])}");
        var expected = new byte[Total];
        for (int i = 0; i < Segments; i++)
            payload.Span.Slice((Segments - 1 - i) * Segment, Segment).CopyTo(expected.AsSpan(i * Segment));
        Bytes.AssertEqual(expected, clientGot, "zero-copy sendmsg");
    }
}
