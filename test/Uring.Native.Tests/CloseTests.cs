namespace Uring.Native.Tests;

public sealed unsafe class CloseTests
{
    [Theory, Engines]
    public void Shutdown_ends_an_in_flight_recv_exactly_once_and_close_follows(RingEngine engine)
    {
        // The design's close sequence. Shutdown must complete before close is prepared: io_uring does not
        // order unlinked SQEs, and IORING_OP_SHUTDOWN always runs in io-wq, looking the fd up only then.
        // Batched with a close, the inline close wins, shutdown fails EBADF, and the recv (holding its own
        // file reference) never completes.
        const ulong Recv = 0x51, Shutdown = 0x52, Close = 0x53;
        using var pair = TcpPair.Create();
        using var buffer = new NativeBuffer(4096);
        using var driver = RingDriver.Create(engine);

        driver.Ring.PrepareRecv(pair.ServerFd, buffer.Pointer, buffer.Length, 0, Recv);
        driver.PumpFor(20);
        Assert.True(driver.Seen.Count == 0, $"The recv completed with no data sent. {driver.History()}");

        driver.Ring.PrepareShutdown(pair.ServerFd, Linux.SHUT_RDWR, Shutdown);
        driver.WaitForAll("the recv and the shutdown", Recv, Shutdown);
        driver.Ring.PrepareClose(pair.ServerFd, Close);
        pair.ForgetServerFd();
        driver.WaitFor(Close, "the close");
        driver.PumpFor(200);

        var recv = driver.Single(Recv);
        Assert.True(recv.Result <= 0 && !recv.HasMore, $"recv should end at EOF or with an error, finally: {RingDriver.Describe(recv)}");
        var shutdown = driver.Single(Shutdown);
        Assert.True(shutdown.Result >= 0, $"shutdown: {RingDriver.Describe(shutdown)}");
        var close = driver.Single(Close);
        Assert.True(close.Result == 0, $"close: {RingDriver.Describe(close)}");
        Assert.Equal(3, driver.Seen.Count);
    }

    [Theory, Engines]
    public void Cancel_fd_then_close_cancels_an_in_flight_recv(RingEngine engine)
    {
        const ulong Recv = 0x61, Cancel = 0x62, Close = 0x63;
        using var pair = TcpPair.Create();
        using var buffer = new NativeBuffer(4096);
        using var driver = RingDriver.Create(engine);

        driver.Ring.PrepareRecv(pair.ServerFd, buffer.Pointer, buffer.Length, 0, Recv);
        driver.PumpFor(20);
        Assert.True(driver.Seen.Count == 0, $"The recv completed with no data sent. {driver.History()}");

        driver.Ring.PrepareCancelFd(pair.ServerFd, all: true, Cancel);
        driver.Ring.PrepareClose(pair.ServerFd, Close);
        pair.ForgetServerFd();
        driver.WaitForAll("the recv, the cancel and the close", Recv, Cancel, Close);
        driver.PumpFor(200);

        var recv = driver.Single(Recv);
        Assert.True(recv.Result == -Errno.ECANCELED && !recv.HasMore, $"recv: {RingDriver.Describe(recv)}");
        var cancel = driver.Single(Cancel);
        Assert.True(cancel.Result == 1, $"IORING_ASYNC_CANCEL_ALL answers the number cancelled (1): {RingDriver.Describe(cancel)}");
        var close = driver.Single(Close);
        Assert.True(close.Result == 0, $"close: {RingDriver.Describe(close)}");
        Assert.Equal(3, driver.Seen.Count);
    }

    [Theory, Engines]
    public void Close_leaves_an_in_flight_recv_pending_on_its_file_until_data_arrives(RingEngine engine)
    {
        // The kernel's IORING_OP_CLOSE only drops the number: the recv holds its own reference to the
        // file, so it neither ends nor loses its socket (no FIN goes out) until it completes. The epoll
        // engine must not be kinder (cancelling it) or a test passing on epoll could fail on io_uring.
        const ulong Recv = 0x71, Close = 0x72;
        using var pair = TcpPair.Create();
        using var buffer = new NativeBuffer(4096);
        using var driver = RingDriver.Create(engine);

        driver.Ring.PrepareRecv(pair.ServerFd, buffer.Pointer, buffer.Length, 0, Recv);
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
