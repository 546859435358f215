namespace Uring.Transport.Tests;

/// <summary>
/// The addresses Kestrel reports for each accepted connection: every connection of a burst (several
/// accepts completing in one go) must get its own client's address and port, as on Sockets.
/// </summary>
public sealed class EndPointTests(ITestOutputHelper output)
{
    public static TheoryData<UringEngine?, string, string> Rows()
    {
        var rows = new TheoryData<UringEngine?, string, string>();
        foreach (UringEngine? engine in new UringEngine?[] { UringEngine.IoUring, UringEngine.Epoll, null }) // null: Kestrel's Sockets, the reference
        {
            rows.Add(engine, "127.0.0.1", "127.0.0.1");
            if (!Loopback.HasIPv6) continue; // no ::1 on this machine (as in ClientTests)
            rows.Add(engine, "::1", "::1");
            rows.Add(engine, "::", "127.0.0.1"); // dual-stack listener, IPv4 client: seen as ::ffff:127.0.0.1
        }
        return rows;
    }

    [Theory, MemberData(nameof(Rows))]
    public async Task Each_connection_of_a_burst_sees_its_own_clients_address_and_port(UringEngine? engine, string listen, string connect)
    {
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/peer", (HttpContext context) =>
            $"{context.Connection.RemoteIpAddress}|{context.Connection.RemotePort}|{context.Connection.LocalIpAddress}|{context.Connection.LocalPort}"),
            output, new ServerSetup { Address = IPAddress.Parse(listen) });
        var target = new IPEndPoint(IPAddress.Parse(connect), server.EndPoint!.Port);
        bool mapped = listen == "::" && target.AddressFamily == AddressFamily.InterNetwork;
        IPAddress serverAddress = mapped ? target.Address.MapToIPv6() : target.Address;

        // 32 connections at once, so that several accepts complete in one go.
        RawConnection[] connections = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => RawConnection.ConnectAsync(target)));
        try
        {
            await Task.WhenAll(connections.Select(async connection =>
            {
                await connection.SendAsync(RawConnection.Request("GET", "/peer"));
                RawResponse response = await connection.ReadResponseAsync();
                Assert.Equal(200, response.StatusCode);

                var client = (IPEndPoint)connection.Socket.LocalEndPoint!;
                IPAddress clientAddress = mapped ? client.Address.MapToIPv6() : client.Address;
                Assert.Equal($"{clientAddress}|{client.Port}|{serverAddress}|{target.Port}", response.BodyText);
            }));
        }
        finally
        {
            foreach (RawConnection connection in connections) connection.Dispose();
        }
    }
}
