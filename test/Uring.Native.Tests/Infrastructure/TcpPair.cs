namespace Uring.Native.Tests;

/// <summary>
/// A connected loopback TCP pair: the server end is a raw non-blocking fd for the ring, the client
/// end a .NET <see cref="Socket"/> (blocking, with timeouts so a failed test cannot hang its peer).
/// </summary>
internal sealed unsafe class TcpPair : IDisposable
{
    private TcpPair(int serverFd, Socket client)
    {
        ServerFd = serverFd;
        Client = client;
    }

    /// <summary>The accepted fd; -1 once the test handed it to the ring's close.</summary>
    public int ServerFd { get; private set; }

    public Socket Client { get; }

    public static TcpPair Create()
    {
        int listenFd = NativeSocket.Listen(new IPEndPoint(IPAddress.Loopback, 0), 16, false);
        try
        {
            var client = NewClient();
            try
            {
                client.Connect(LocalEndPoint(listenFd));
                return new TcpPair(AcceptBlocking(listenFd, 5000), client);
            }
            catch
            {
                client.Dispose();
                throw;
            }
        }
        finally
        {
            NativeSocket.Close(listenFd);
        }
    }

    public static Socket NewClient() => new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
    {
        NoDelay = true,
        ReceiveTimeout = 10_000,
        SendTimeout = 10_000,
    };

    public static IPEndPoint LocalEndPoint(int fd) =>
        (IPEndPoint)(NativeSocket.GetLocalEndPoint(fd) ?? throw new InvalidOperationException("getsockname failed"));

    /// <summary>accept4 on a non-blocking listener, polling up to <paramref name="timeoutMs"/>.</summary>
    public static int AcceptBlocking(int listenFd, int timeoutMs)
    {
        while (true)
        {
            int fd = Libc.accept4(listenFd, null, null, Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC);
            if (fd >= 0) return fd;
            int errno = Libc.Errno;
            if (errno != Errno.EAGAIN) throw new RingException("accept4", errno);
            var poll = new PollFd { Fd = listenFd, Events = (short)Linux.POLLIN };
            if (Libc.poll(&poll, 1, timeoutMs) <= 0) throw new RingException("poll for accept", Errno.ETIMEDOUT);
        }
    }

    /// <summary>The ring now owns closing the fd (a close was prepared): never close a number that may be reused.</summary>
    public void ForgetServerFd() => ServerFd = -1;

    /// <summary>Reads exactly <paramref name="count"/> bytes from the client (or fewer at end of stream).</summary>
    public byte[] ClientReceiveExactly(int count) => ReceiveExactly(Client, count);

    public static byte[] ReceiveExactly(Socket socket, int count)
    {
        var data = new byte[count];
        int got = 0;
        while (got < count)
        {
            int n = socket.Receive(data, got, count - got, SocketFlags.None);
            if (n == 0) return data.AsSpan(0, got).ToArray();
            got += n;
        }
        return data;
    }

    public void Dispose()
    {
        if (ServerFd >= 0)
        {
            NativeSocket.Close(ServerFd);
            ServerFd = -1;
        }
        Client.Dispose();
    }
}
