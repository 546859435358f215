namespace Uring.Native.Tests;

public sealed unsafe class CloseTests
{
    [Theory, Engines]
    public void Close_leaves_an_in_flight_recv_pending_on_its_file_until_data_arrives(RingKind engine)
    {
        // The kernel's IORING_OP_CLOSE only drops the number: the recv holds its own reference to the
        // file, so it neither ends nor loses its socket (no FIN goes out) until it completes. The epoll
        // engine must not be kinder (cancelling it) or a test passing on epoll could fail on io_uring.
        const ulong Recv = 0x71, Close = 0x72;
        using var pair = TcpPair.Create();
        using var buffer = new NativeBuffer(4096);
        using var driver = RingDriver.Create(engine);

        driver.Ring.PrepareRecv(pair.ServerFd, buffer.Pointer, buffer.Length, Recv);
        driver.PumpFor(20);
        driver.Ring.PrepareClose(pair.ServerFd, Close);
        pair.ForgetServerFd();
        var close = driver.WaitFor(Close, "the close");
        Assert.True(close.Result == 0, $"close: {RingDriver.Describe(close)}");
        driver.PumpFor(200);
        Assert.True(driver.Count(Recv) == 0, $"The recv ended when its fd was closed. {driver.History()}");

        // The socket is still open: no FIN reached the peer.
        pair.Client.Blocking = false;
        var probe = new byte[1];
        var error = Assert.Throws<SocketException>(() => pair.Client.Receive(probe));
        Assert.Equal(SocketError.WouldBlock, error.SocketErrorCode);
        pair.Client.Blocking = true;

        pair.Client.Send("late"u8);
        var recv = driver.WaitFor(Recv, "the recv, completed by data after the close");
        Assert.True(recv.Result == 4 && !recv.HasMore, $"recv: {RingDriver.Describe(recv)}");
        Assert.Equal("late"u8.ToArray(), buffer.Span.Slice(0, 4).ToArray());

        // Its last reference gone, the file is closed: the peer sees the end of the stream.
        Assert.Equal(0, pair.Client.Receive(probe));
    }
}
