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
    public async Task With_a_loop_bound_to_each_cpu_a_connection_is_served_by_the_loop_on_the_cpu_that_received_it(RingEngine engine)
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
    public async Task With_hash_steering_connections_from_one_cpu_are_spread_over_the_loops(RingEngine engine)
    {
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapLoopIndex, output,
            new ServerSetup { Transport = o => o.ListenerSteering = ListenerSteering.Hash });
        Assert.Contains("by flow hash", Assert.Single(server.Logs.Entries, e => e.EventId.Id == 34).Message);

        int[] served = await LoopsServingConnectionsFromAsync(server, NativeThread.AllowedCpus()[0], count: 2 * Connections);
        output.WriteLine($"loops {string.Join(",", served)}");
        Assert.All(Enumerable.Range(0, TestServer.RingCount), index => Assert.Contains(index, served));
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
                served[i] = int.Parse((await connections[i].ReadResponseAsync()).BodyText, CultureInfo.InvariantCulture);
            }
            return served;
        }
        finally
        {
            foreach (RawConnection c in connections) c.Dispose();
        }
    }
}
