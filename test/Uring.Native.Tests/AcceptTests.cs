namespace Uring.Native.Tests;

public sealed unsafe class AcceptTests
{
    private const int AcceptFlags = Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC;

    [Theory, Engines]
    public void Accept_recv_send_echo_is_byte_exact(RingKind engine)
    {
        const ulong Accept = 0xA1, Recv = 0xA2, Send = 0xA3;
        const int Length = 3000;
        int listenFd = NativeSocket.Listen(new IPEndPoint(IPAddress.Loopback, 0), 128, false);
        int serverFd = -1;
        using var client = TcpPair.NewClient();
        using var buffer = new NativeBuffer(Length);
        var payload = new byte[Length];
        new Random(3).NextBytes(payload);
        try
        {
            using var driver = RingDriver.Create(engine);
            driver.Ring.PrepareAccept(listenFd, AcceptFlags, Accept);
            driver.Ring.SubmitAndWait(0, 0);

            client.Connect(TcpPair.LocalEndPoint(listenFd));
            var accepted = driver.WaitFor(Accept, "the accept");
            Assert.True(accepted.Result >= 0, $"accept failed: {RingDriver.Describe(accepted)}");
            serverFd = accepted.Result;
            Assert.False(accepted.HasMore);

            client.Send(payload);

            // Receive until every byte is in (TCP may deliver fewer per recv).
            int received = 0;
            while (received < Length)
            {
                driver.Seen.Clear();
                driver.Ring.PrepareRecv(serverFd, buffer.Pointer + received, Length - received, Recv);
                var recv = driver.WaitFor(Recv, $"recv after {received} bytes");
                Assert.True(recv.Result > 0, $"recv after {received} bytes: {RingDriver.Describe(recv)}");
                received += recv.Result;
            }
            Bytes.AssertEqual(payload, buffer.Span, "server received");

            // Echo it back, handling short sends.
            int sent = 0;
            while (sent < Length)
            {
                driver.Seen.Clear();
                driver.Ring.PrepareSend(serverFd, buffer.Pointer + sent, Length - sent, Send);
                var send = driver.WaitFor(Send, $"send after {sent} bytes");
                Assert.True(send.Result > 0, $"send after {sent} bytes: {RingDriver.Describe(send)}");
                sent += send.Result;
            }

            Bytes.AssertEqual(payload, TcpPair.ReceiveExactly(client, Length), "client received the echo");
        }
        finally
        {
            if (serverFd >= 0) NativeSocket.Close(serverFd);
            NativeSocket.Close(listenFd);
        }
    }

    [Theory, Engines]
    public void Multishot_accept_takes_100_connections_and_ends_on_cancel(RingKind engine)
    {
        const int Connections = 100;
        const ulong Accept = 0xACC, Cancel = 0xCA;
        int listenFd = NativeSocket.Listen(new IPEndPoint(IPAddress.Loopback, 0), 128, false);
        var endPoint = TcpPair.LocalEndPoint(listenFd);
        var clients = new List<Socket>();
        var acceptedFds = new List<int>();
        try
        {
            using var driver = RingDriver.Create(engine);
            Action<Completion> track = c => { if (c.UserData == Accept && c.Result >= 0) acceptedFds.Add(c.Result); };
            driver.Ring.PrepareAcceptMultishot(listenFd, AcceptFlags, Accept);
            driver.Ring.SubmitAndWait(0, 0);

            var connector = PeerThread.Start("connector", () =>
            {
                for (int i = 0; i < Connections; i++)
                {
                    var client = TcpPair.NewClient();
                    lock (clients) clients.Add(client);
                    client.Connect(endPoint);
                }
            });
            driver.PumpUntil(() => driver.Count(Accept) >= Connections, $"{Connections} accepts", track);
            connector.Join();

            var accepts = driver.For(Accept);
            Assert.True(accepts.Count == Connections, $"Expected {Connections} accept completions. {driver.History()}");
            for (int i = 0; i < Connections; i++)
            {
                Assert.True(accepts[i].Result >= 0, $"Accept #{i} failed: {RingDriver.Describe(accepts[i])}");
                if (i < Connections - 1)
                    Assert.True(accepts[i].HasMore, $"Accept #{i} ended the multishot: {RingDriver.Describe(accepts[i])}");
            }
            Assert.Equal(Connections, acceptedFds.Distinct().Count());

            bool stillArmed = accepts[^1].HasMore;
            driver.Ring.PrepareCancel(Accept, Cancel);
            driver.PumpUntil(() => driver.Count(Cancel) > 0 && (!stillArmed || driver.Count(Accept) > Connections),
                "the cancel and the multishot's final completion", track);
            driver.PumpFor(50, track);

            var cancel = driver.Single(Cancel);
            accepts = driver.For(Accept);
            if (stillArmed)
            {
                Assert.True(cancel.Result == 0, $"Cancel result: {RingDriver.Describe(cancel)}");
                Assert.True(accepts.Count == Connections + 1, $"Expected exactly one final accept completion. {driver.History()}");
                var final = accepts[^1];
                Assert.True(final.Result == -Errno.ECANCELED && !final.HasMore,
                    $"Final accept completion should be -ECANCELED without MORE: {RingDriver.Describe(final)}");
            }
            else
            {
                Assert.True(cancel.Result == -Errno.ENOENT || cancel.Result == -Errno.EALREADY,
                    $"The multishot had already ended, cancel should find nothing: {RingDriver.Describe(cancel)}");
            }
        }
        finally
        {
            foreach (int fd in acceptedFds) NativeSocket.Close(fd);
            lock (clients) foreach (var client in clients) client.Dispose();
            NativeSocket.Close(listenFd);
        }
    }
}
