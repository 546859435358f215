using System.Globalization;
using Microsoft.AspNetCore.Connections;

namespace Uring.Transport.Tests;

/// <summary>
/// A port belongs to the server that bound it first: a second server fails at start-up as with
/// Kestrel's Sockets transport, a stranger that joins the port's SO_REUSEPORT group gets no
/// connection, and other bind failures surface as the exception types Kestrel's own transport throws.
/// </summary>
public sealed class PortOwnershipTests(ITestOutputHelper output)
{
    public static IEnumerable<object?[]> EnginesAndSockets() =>
    [
        [UringEngine.IoUring],
        [UringEngine.Epoll],
        [null], // Kestrel's Sockets transport: the behaviour to match
    ];

    [Theory, MemberData(nameof(EnginesAndSockets))]
    public async Task A_second_server_on_a_served_port_fails_at_start_up_with_address_in_use(UringEngine? engine)
    {
        await using TestServer first = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);
        int port = first.EndPoint!.Port;

        var setup = new ServerSetup { Port = port, Transport = o => o.ListenerSharding = true };
        IOException error = await Assert.ThrowsAsync<IOException>(() => TestServer.StartAsync(engine, TestData.MapPlaintext, output, setup));

        output.WriteLine(error.ToString());
        Assert.Contains("address already in use", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(port.ToString(CultureInfo.InvariantCulture), error.Message);
        var inUse = Assert.IsType<AddressInUseException>(error.InnerException);
        if (engine is not null) Assert.Contains($"127.0.0.1:{port}", inUse.Message); // ours names the endpoint too
        // The first server still owns the port and serves.
        await ServerResources.AssertServesAsync(first);
    }

    [Theory, Engines]
    public async Task A_stranger_that_joins_the_ports_reuseport_group_gets_none_of_500_connections(UringEngine engine)
    {
        const int Connections = 500;
        await using TestServer server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output,
            new ServerSetup { Transport = o => o.ListenerSharding = true });

        // What a second process of the same user could do: share the port and listen.
        using var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        stranger.SetRawSocketOption(1 /* SOL_SOCKET */, 15 /* SO_REUSEPORT */, BitConverter.GetBytes(1));
        stranger.Bind(server.EndPoint!);
        stranger.Listen(Connections);
        stranger.Blocking = false;

        int answered = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, Connections), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (_, _) =>
        {
            using RawConnection connection = await server.ConnectRawAsync();
            await connection.SendAsync(RawConnection.Request("GET", "/plaintext", "Connection: close"));
            RawResponse response = await connection.ReadResponseAsync();
            if (response.StatusCode == 200 && response.BodyText == "Hello, World!") Interlocked.Increment(ref answered);
        });

        int stolen = 0;
        while (true)
        {
            try
            {
                stranger.Accept().Dispose();
                stolen++;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
            {
                break;
            }
        }
        output.WriteLine($"server answered {answered} of {Connections}; the stranger accepted {stolen}");
        Assert.Equal(0, stolen);
        Assert.Equal(Connections, answered);
    }

    [Theory, MemberData(nameof(EnginesAndSockets))]
    public async Task Binding_an_address_this_host_does_not_have_fails_with_a_SocketException(UringEngine? engine)
    {
        // TEST-NET-3 (RFC 5737): never a local address.
        var setup = new ServerSetup { Address = IPAddress.Parse("203.0.113.7") };
        Exception error = await Assert.ThrowsAnyAsync<Exception>(() => TestServer.StartAsync(engine, TestData.MapPlaintext, output, setup));

        output.WriteLine(error.ToString());
        SocketException socketError = Assert.IsType<SocketException>(error);
        Assert.Equal(SocketError.AddressNotAvailable, socketError.SocketErrorCode);
    }
}
