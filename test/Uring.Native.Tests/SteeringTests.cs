namespace Uring.Native.Tests;

/// <summary>
/// The SO_REUSEPORT steering program: connections received on a mapped CPU go to that CPU's socket,
/// the others are spread by flow hash over the group's first sockets only. On loopback a
/// connection's SYN is handled on the CPU of the thread that connects, so a pinned client thread
/// chooses the receiving CPU.
/// </summary>
public sealed class SteeringTests(ITestOutputHelper output)
{
    private const int Connections = 32;

    [Fact]
    public void A_connection_goes_to_the_socket_mapped_to_the_cpu_that_received_it()
    {
        int[] allowed = NativeThread.AllowedCpus();
        Assert.NotEmpty(allowed);
        int a = allowed[0];
        int b = allowed.Length > 1 ? allowed[1] : a + 1; // with one CPU, b receives nothing
        using Group group = Group.Create(2);
        // Reversed on purpose: socket 0 takes CPU b's connections, socket 1 CPU a's.
        Assert.Equal(0, NativeSocket.AttachReusePortSteering((int)group.Sockets[0].Handle, 2, [b, a]));

        int[] fromA = group.ConnectFromCpu(a, Connections);
        output.WriteLine($"from CPU {a}: {string.Join(", ", fromA)}");
        Assert.Equal([0, Connections], fromA);
        if (allowed.Length > 1)
        {
            int[] fromB = group.ConnectFromCpu(b, Connections);
            output.WriteLine($"from CPU {b}: {string.Join(", ", fromB)}");
            Assert.Equal([Connections, 0], fromB);
        }
    }

    [Fact]
    public void Without_a_cpu_map_connections_from_one_cpu_are_spread_by_hash_over_the_first_sockets_only()
    {
        int cpu = NativeThread.AllowedCpus()[0];
        using Group group = Group.Create(3); // the third joins the group but is not counted in it
        // CPU `cpu + 1000` never receives anything: every connection takes the hash path.
        Assert.Equal(0, NativeSocket.AttachReusePortSteering((int)group.Sockets[0].Handle, 2, [cpu + 1000]));

        int[] counts = group.ConnectFromCpu(cpu, Connections);
        output.WriteLine($"from CPU {cpu}: {string.Join(", ", counts)}");
        Assert.Equal(Connections, counts[0] + counts[1]);
        Assert.True(counts[0] > 0 && counts[1] > 0, "One CPU's connections all went to one socket: the flow hash did not spread them.");
        Assert.Equal(0, counts[2]);
    }

    [Fact]
    public void A_map_longer_than_the_group_is_refused()
    {
        Assert.Throws<ArgumentException>(() => NativeSocket.AttachReusePortSteering(-1, 1, [0, 1]));
    }

    /// <summary>Listening sockets sharing one loopback port (SO_REUSEPORT), in the group's order.</summary>
    private sealed class Group : IDisposable
    {
        public required Socket[] Sockets { get; init; }

        public static Group Create(int count)
        {
            var sockets = new Socket[count];
            int port = 0;
            for (int i = 0; i < count; i++)
            {
                sockets[i] = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets[i].SetRawSocketOption(Linux.SOL_SOCKET, Linux.SO_REUSEPORT, BitConverter.GetBytes(1));
                sockets[i].Bind(new IPEndPoint(IPAddress.Loopback, port));
                port = ((IPEndPoint)sockets[i].LocalEndPoint!).Port;
                sockets[i].Listen(Connections);
                sockets[i].Blocking = false;
            }
            return new Group { Sockets = sockets };
        }

        /// <summary>Connects <paramref name="count"/> times from a thread bound to <paramref name="cpu"/>; how many each socket accepted.</summary>
        public int[] ConnectFromCpu(int cpu, int count)
        {
            var clients = new List<Socket>();
            var target = (IPEndPoint)Sockets[0].LocalEndPoint!;
            try
            {
                OnCpu.Run(cpu, () =>
                {
                    for (int i = 0; i < count; i++)
                    {
                        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                        clients.Add(client);
                        client.Connect(target);
                    }
                }, TimeSpan.FromSeconds(30));
                var counts = new int[Sockets.Length];
                int accepted = 0;
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (accepted < count && DateTime.UtcNow < deadline)
                {
                    bool any = false;
                    for (int i = 0; i < Sockets.Length; i++)
                    {
                        try
                        {
                            Sockets[i].Accept().Dispose();
                            counts[i]++;
                            accepted++;
                            any = true;
                        }
                        catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
                        {
                        }
                    }
                    if (!any) Thread.Sleep(1);
                }
                Assert.Equal(count, accepted);
                return counts;
            }
            finally
            {
                foreach (Socket c in clients) c.Dispose();
            }
        }

        public void Dispose()
        {
            foreach (Socket s in Sockets) s.Dispose();
        }
    }
}
