namespace Uring.Native.Tests;

public sealed unsafe class ConnectTests
{
    [Theory, Engines]
    public void Connect_completes_and_sendmsg_gathers_iovecs(RingKind engine)
    {
        const ulong Connect = 0xF1, SendMsg = 0xF2;
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        int fd = NativeSocket.CreateStream(Linux.AF_INET);
        var parts = new[] { "first|"u8.ToArray(), "second part|"u8.ToArray(), "third"u8.ToArray() };
        // One pinned block: the sockaddr, the msghdr, the iovecs and the bytes, alive until the final completions.
        using var memory = new NativeBuffer(4096);
        try
        {
            using var driver = RingDriver.Create(engine);
            byte* address = memory.Pointer;
            int addressLength = SockAddr.Write(listener.LocalEndPoint!, new Span<byte>(address, SockAddr.MaxSize));
            driver.Ring.PrepareConnect(fd, address, addressLength, Connect);
            var connect = driver.WaitFor(Connect, "the connect");
            Assert.True(connect.Result == 0, $"connect: {RingDriver.Describe(connect)}");
            using var peer = listener.Accept();
            peer.ReceiveTimeout = 10_000;

            var message = (MsgHdr*)(memory.Pointer + 256);
            var iov = (IoVec*)(memory.Pointer + 512);
            byte* data = memory.Pointer + 1024;
            int total = 0;
            for (int i = 0; i < parts.Length; i++)
            {
                parts[i].CopyTo(new Span<byte>(data + total, parts[i].Length));
                iov[i] = new IoVec { Base = data + total, Length = (nuint)parts[i].Length };
                total += parts[i].Length;
            }
            *message = new MsgHdr { Iov = iov, IovLength = (nuint)parts.Length };

            driver.Ring.PrepareSendMsg(fd, message, SendMsg);
            var sendMsg = driver.WaitFor(SendMsg, "the sendmsg");
            Assert.True(sendMsg.Result == total, $"sendmsg: {RingDriver.Describe(sendMsg)}");

            Bytes.AssertEqual(parts.SelectMany(p => p).ToArray(), TcpPair.ReceiveExactly(peer, total), "gathered sendmsg");
        }
        finally
        {
            NativeSocket.Close(fd);
        }
    }

    [Theory, Engines]
    public void Connect_to_a_port_nobody_listens_on_fails_with_ECONNREFUSED(RingKind engine)
    {
        const ulong Connect = 0xF3;
        // Bound but not listening: the port stays ours and every SYN is answered with RST.
        using var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        bound.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int fd = NativeSocket.CreateStream(Linux.AF_INET);
        using var address = new NativeBuffer(SockAddr.MaxSize);
        try
        {
            using var driver = RingDriver.Create(engine);
            int length = SockAddr.Write(bound.LocalEndPoint!, address.Span);
            driver.Ring.PrepareConnect(fd, address.Pointer, length, Connect);

            var connect = driver.WaitFor(Connect, "the connect");
            driver.PumpFor(20);

            Assert.True(connect.Result == -Errno.ECONNREFUSED, $"connect: {RingDriver.Describe(connect)}");
            Assert.Equal(1, driver.Count(Connect));
        }
        finally
        {
            NativeSocket.Close(fd);
        }
    }
}
