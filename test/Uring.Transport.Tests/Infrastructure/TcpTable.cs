namespace Uring.Transport.Tests.Infrastructure;

/// <summary>The TCP sockets of this network namespace, read from /proc/self/net/tcp and tcp6.</summary>
internal static class TcpTable
{
    /// <summary>The kernel's state code for a listening socket (TCP_LISTEN).</summary>
    public const int Listen = 0x0A;

    public readonly record struct Row(int LocalPort, int RemotePort, int State, string Inode);

    public static IEnumerable<Row> Rows()
    {
        foreach (string table in new[] { "/proc/self/net/tcp", "/proc/self/net/tcp6" })
        {
            if (!File.Exists(table)) continue;
            foreach (string line in File.ReadLines(table).Skip(1))
            {
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
                string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length <= 9) continue;
                yield return new Row(
                    Convert.ToInt32(fields[1].Split(':')[1], 16),
                    Convert.ToInt32(fields[2].Split(':')[1], 16),
                    Convert.ToInt32(fields[3], 16),
                    fields[9]);
            }
        }
    }

    /// <summary>The inodes of the sockets listening on a port (any address, either family).</summary>
    public static HashSet<string> ListeningOn(int port) =>
        Rows().Where(r => r.State == Listen && r.LocalPort == port).Select(r => r.Inode).ToHashSet();

    /// <summary>
    /// Asserts that none of <paramref name="listening"/> (inodes from <see cref="ListeningOn"/>) still
    /// listens and that a connect to <paramref name="endPoint"/> is refused, or else reaches something
    /// that is not one of them. There is no grace period: the stop that returned must have closed them.
    /// (A child process between fork and exec would hold them open: see <see cref="ChildProcessCollection"/>.)
    /// </summary>
    public static async Task AssertClosedAsync(IPEndPoint endPoint, HashSet<string> listening, ITestOutputHelper? output)
    {
        Assert.NotEmpty(listening); // else this check would prove nothing
        string[] still = [.. ListeningOn(endPoint.Port).Intersect(listening)];
        Assert.True(still.Length == 0,
            $"{still.Length} of the {listening.Count} socket(s) that listened on port {endPoint.Port} still listen.");

        using var probe = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await probe.ConnectAsync(endPoint, Limits.StepToken());
            // The port is free again, so a connect can succeed without those sockets: the kernel may
            // pick the port itself as the probe's source (a TCP self-connect), or a test running
            // alongside may have bound it. Neither is one of the sockets checked above.
            output?.WriteLine($"The probe connected to {endPoint} from {probe.LocalEndPoint}: not one of the closed listeners.");
        }
        catch (SocketException refused)
        {
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        }
    }
}
