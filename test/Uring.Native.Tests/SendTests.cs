namespace Uring.Native.Tests;

public sealed unsafe class SendTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public void Send_of_4_MiB_handles_short_sends_and_arrives_intact(RingKind engine)
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
                driver.Ring.PrepareSend(pair.ServerFd, payload.Pointer + sent, Total - sent, Send);
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
    public unsafe void SendMsgZc_sends_an_iovec_then_notifies_and_reports_the_copy_on_loopback(RingKind engine)
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
        driver.Ring.PrepareSendMsgZc(pair.ServerFd, msg, Send);
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
