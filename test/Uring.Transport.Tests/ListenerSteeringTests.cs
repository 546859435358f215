using System.Globalization;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// Which loop the kernel gives a new connection (ListenerSteering). On loopback a connection's SYN
/// is handled on the CPU of the thread that connects, so a client thread bound to a CPU chooses the
/// receiving CPU.
/// </summary>
public sealed class ListenerSteeringTests(ITestOutputHelper output)
{
    private const int Connections = 16;

    [Theory, Engines]
    public async Task With_a_loop_bound_to_each_cpu_a_connection_is_served_by_the_loop_on_the_cpu_that_received_it(UringEngine engine)
    {
        int[] allowed = NativeThread.AllowedCpus();
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapLoopIndex, output,
            new ServerSetup { Transport = o => o.LoopAffinity = LoopAffinity.Pinned });
        int?[] cpus = server.Group.Loops.Select(l => l.BoundCpu).ToArray();
        output.WriteLine($"allowed CPUs {string.Join(",", allowed)}; loops on {string.Join(",", cpus)}");
        string steering = Assert.Single(server.Logs.Entries, e => e.EventId.Id == 34).Message;
        output.WriteLine(steering);
        if (cpus.Distinct().Count() < cpus.Length)
        {
            // One CPU for both loops: nothing to steer by, so the flow hash.
            Assert.Contains("by flow hash", steering);
            Assert.DoesNotContain("receiving CPU", steering);
            return;
        }

        Assert.Contains("by receiving CPU", steering);
        foreach (IoLoop loop in server.Group.Loops)
        {
            int[] served = await LoopsServingConnectionsFromAsync(server, loop.BoundCpu!.Value);
            output.WriteLine($"from CPU {loop.BoundCpu}: loops {string.Join(",", served)}");
            Assert.All(served, index => Assert.Equal(loop.Index, index));
        }
    }

    [Theory, Engines]
    public async Task With_hash_steering_connections_from_one_cpu_are_spread_over_the_loops(UringEngine engine)
    {
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapLoopIndex, output,
            new ServerSetup { Transport = o => o.ListenerSteering = ListenerSteering.Hash });
        Assert.Contains("by flow hash", Assert.Single(server.Logs.Entries, e => e.EventId.Id == 34).Message);

        int[] served = await LoopsServingConnectionsFromAsync(server, NativeThread.AllowedCpus()[0], count: 2 * Connections);
        output.WriteLine($"loops {string.Join(",", served)}");
        Assert.All(Enumerable.Range(0, TestServer.RingCount), index => Assert.Contains(index, served));
    }

    [Theory, Engines]
    public async Task After_an_acceptor_fails_to_start_a_stranger_joining_the_port_gets_no_connection(UringEngine engine)
    {
        var rings = new ScriptedRing?[TestServer.RingCount];
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapLoopIndex, output, new ServerSetup
        {
            Transport = o => o.LoopAffinity = LoopAffinity.Pinned,
            Environment = TestEnvironment.Decorated((ring, index) =>
            {
                var scripted = new ScriptedRing(ring);
                if (index == 1)
                {
                    // Loop 1's first accept cannot be queued (a full ring that could not be flushed).
                    scripted.FailPrepares(nameof(IRing.PrepareAcceptMultishot));
                    scripted.FailPrepares(nameof(IRing.PrepareAccept));
                }
                return rings[index] = scripted;
            }),
        });
        int?[] cpus = server.Group.Loops.Select(l => l.BoundCpu).ToArray();
        if (cpus.Distinct().Count() < cpus.Length) return; // one CPU for both loops: nothing is steered by CPU

        // A process of the same user joins the port's reuseport group.
        using var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        stranger.SetRawSocketOption(Linux.SOL_SOCKET, Linux.SO_REUSEADDR, BitConverter.GetBytes(1));
        stranger.SetRawSocketOption(Linux.SOL_SOCKET, Linux.SO_REUSEPORT, BitConverter.GetBytes(1));
        stranger.Bind(server.EndPoint!);
        stranger.Listen(64);

        // Every connection, from either CPU, is ours: our sockets keep their places in the group.
        foreach (IoLoop loop in server.Group.Loops)
        {
            int[] served = await LoopsServingConnectionsFromAsync(server, loop.BoundCpu!.Value);
            output.WriteLine($"from CPU {loop.BoundCpu}: loops {string.Join(",", served)}");
            Assert.All(served, index => Assert.Equal(loop.Index, index));
        }
        Assert.False(stranger.Poll(0, SelectMode.SelectRead), "The stranger was given a connection.");
    }

    /// <summary>Which loop serves each of <paramref name="count"/> connections made from a thread bound to <paramref name="cpu"/>.</summary>
    private static async Task<int[]> LoopsServingConnectionsFromAsync(TestServer server, int cpu, int count = Connections)
    {
        var connections = new List<RawConnection>();
        try
        {
            // connect(2) sends the SYN on the bound thread's CPU; the rest can happen anywhere.
            OnCpu.Run(cpu, () =>
            {
                for (int i = 0; i < count; i++)
                    connections.Add(RawConnection.ConnectAsync(server.EndPoint!).GetAwaiter().GetResult());
            }, Limits.Stop);

            var served = new int[count];
            for (int i = 0; i < count; i++)
            {
                await connections[i].SendAsync(RawConnection.Request("GET", "/loop"));
                served[i] = int.Parse((await connections[i].ReadResponseAsync().WaitAsync(Limits.Stop)).BodyText, CultureInfo.InvariantCulture);
            }
            return served;
        }
        finally
        {
            foreach (RawConnection c in connections) c.Dispose();
        }
    }
}
