using System.Text.Json;

namespace Uring.Soak;

/// <summary>One look at the server: from /proc (RSS, fds) and from its GET /diag (the transport's meter).</summary>
internal sealed record Sample(
    double Seconds, long RssBytes, long OpenFds, long Sockets, long Connections, long PoolRented, long PoolAllocated, long QueueLength, long BuffersInUse);

/// <summary>
/// Samples the server once a second: RSS and fd count straight from /proc/PID (they need no
/// cooperation from the server), the rest from GET /diag on a connection of its own.
/// </summary>
internal sealed class Sampler
{
    private readonly SoakServer _server;
    private WireConnection? _diag;

    public Sampler(SoakServer server) => _server = server;

    public List<Sample> Samples { get; } = new();

    /// <summary>Samples that could not be taken (the server did not answer /diag in time).</summary>
    public int Missed { get; private set; }

    public async Task<Sample?> TakeAsync(double seconds)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            _diag ??= await WireConnection.ConnectAsync(_server.EndPoint, timeout.Token);
            await _diag.SendAsync(WireConnection.Get("/diag"), timeout.Token);
            (ResponseHead head, byte[] body) = await _diag.ReadResponseAsync(timeout.Token);
            if (head.Status != 200) throw new InvalidDataException($"GET /diag answered {head.Status}");
            using JsonDocument json = JsonDocument.Parse(body);
            JsonElement d = json.RootElement;
            long Metric(string name) => d.TryGetProperty(name, out JsonElement v) ? v.GetInt64() : 0;
            (long fds, long sockets) = OpenFds(_server.Pid);
            var sample = new Sample(seconds, RssBytes(_server.Pid), fds, sockets,
                Metric("uring.transport.connections"), Metric("uring.transport.memory_pool.rented"),
                Metric("uring.transport.memory_pool.allocated"), Metric("uring.transport.loop.queue_length"),
                Metric("uring.transport.provided_buffers.in_use"));
            Samples.Add(sample);
            return sample;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or InvalidDataException or OperationCanceledException or JsonException)
        {
            Missed++;
            _diag?.Dispose();
            _diag = null;
            return null;
        }
    }

    public void Close() => _diag?.Dispose();

    private static long RssBytes(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
        return 0;
    }

    /// <summary>Open fds, and how many of them are sockets (the rest are mostly assemblies the runtime keeps open as it loads them).</summary>
    private static (long Fds, long Sockets) OpenFds(int pid)
    {
        long fds = 0, sockets = 0;
        foreach (FileSystemInfo fd in new DirectoryInfo($"/proc/{pid}/fd").EnumerateFileSystemInfos())
        {
            fds++;
            try
            {
                if (fd.LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true) sockets++;
            }
            catch (IOException)
            {
                // closed while we looked
            }
        }
        return (fds, sockets);
    }
}
