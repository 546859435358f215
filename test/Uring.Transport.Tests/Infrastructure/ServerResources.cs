namespace Uring.Transport.Tests.Infrastructure;

/// <summary>
/// Tests that measure what a server holds (this process's fds, a loop group's pool bytes and
/// provided buffers): they run alone, after the parallel tests, so that other tests' sockets, and
/// client connections that share a published server group, do not blur the counts.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ResourceCountsCollection
{
    public const string Name = "Resource counts";
}

/// <summary>
/// What a server's transport and this process hold while idle (fds, pool bytes, provided buffers,
/// connections), taken once the server has served a request; after a storm everything must be back.
/// </summary>
internal sealed class ServerResources
{
    private readonly Dictionary<int, string> _fds;
    private readonly long _poolRented;

    private ServerResources(Dictionary<int, string> fds, long poolRented)
    {
        _fds = fds;
        _poolRented = poolRented;
    }

    /// <summary>
    /// Serves one request first (so the server and this process's client side have created whatever
    /// they create lazily), waits until its connection is gone, then records the baseline.
    /// </summary>
    public static async Task<ServerResources> BaselineAsync(TestServer server)
    {
        await AssertServesAsync(server);
        Assert.True(await Eventually.HoldsAsync(() => Connections(server) == 0, Limits.Stop), "The warm-up connection did not close.");
        return new ServerResources(OpenFiles.List(), server.Group.Pool.RentedBytes);
    }

    /// <summary>One GET /plaintext on a new connection answers "Hello, World!".</summary>
    public static async Task AssertServesAsync(TestServer server)
    {
        using RawConnection connection = await server.ConnectRawAsync();
        await connection.SendAsync(RawConnection.Request("GET", "/plaintext", "Connection: close"));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        Assert.Equal("Hello, World!", response.BodyText);
    }

    /// <summary>
    /// A normal request succeeds, then within <see cref="Limits.Stop"/>: no connection is left, every
    /// provided buffer is back in its ring, pool bytes and the process's fd count are at the baseline.
    /// </summary>
    public async Task AssertServerRecoveredAsync(TestServer server, ITestOutputHelper output)
    {
        await AssertServesAsync(server);
        Dictionary<int, string> fds = OpenFiles.List();
        bool back = await Eventually.HoldsAsync(() =>
        {
            if (Connections(server) != 0 || BuffersInUse(server) != 0 || server.Group.Pool.RentedBytes != _poolRented) return false;
            fds = OpenFiles.List();
            return fds.Count <= _fds.Count;
        }, Limits.Stop);

        string state =
            $"connections {Connections(server)}, provided buffers in use {BuffersInUse(server)}, " +
            $"pool rented {server.Group.Pool.RentedBytes} B (baseline {_poolRented} B), " +
            $"open fds {fds.Count} (baseline {_fds.Count}: {OpenFiles.Diff(_fds, fds)})";
        output.WriteLine(state);
        Assert.True(back, $"The server did not return to its baseline within {Limits.Stop.TotalSeconds} s: {state}");
    }

    public static int Connections(TestServer server) => server.Group.Loops.Sum(l => l.Members.Connections);

    public static int BuffersInUse(TestServer server) => server.Group.Loops.Sum(l => l.Buffers.InUse);
}
