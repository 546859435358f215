namespace Uring.Transport.Tests;

/// <summary>
/// io_uring refused by a real kernel seccomp filter, as in a container under Docker's default
/// profile: the child server (test/Uring.Transport.ChildServer, --seccomp-deny-io-uring) installs
/// on all its threads a BPF filter that answers io_uring_setup, io_uring_enter and
/// io_uring_register with EPERM, then starts with Engine=Auto. (EngineLossTests injects the errno
/// instead; this is the kernel's answer.) Not run again in build.sh's pass as on older kernels:
/// with io_uring refused, the feature mask has nothing to change.
/// </summary>
[Collection(ChildProcessCollection.Name)]
public sealed class SeccompTests(ITestOutputHelper output)
{
    private const int Connections = 8, EchoSize = 64 * 1024, DownloadSize = 100_000;

    [Fact]
    public async Task Auto_under_a_seccomp_filter_refusing_io_uring_serves_on_epoll_and_logs_why_once()
    {
        // The refusal must be the filter's: here, outside it, io_uring works.
        Assert.True(KernelProbe.Current.Problem is null, $"io_uring does not work in the test host itself: {KernelProbe.Current.Problem}");
        int hostFilters = SeccompFilters(ProcessStatus("/proc/self/status"));

        using ChildServerProcess child = await ChildServerProcess.StartAsync(UringEngine.Auto, output, denyIoUring: true);

        // A filter was added, in filter mode, on every thread (TSYNC, and inherited by later threads).
        IReadOnlyDictionary<string, string> status = ProcessStatus($"/proc/{child.Pid}/status");
        Assert.Equal("2", status.GetValueOrDefault("Seccomp"));
        Assert.Equal(hostFilters + 1, SeccompFilters(status));
        string[] threads = Directory.GetDirectories($"/proc/{child.Pid}/task");
        foreach (string thread in threads)
        {
            IReadOnlyDictionary<string, string> task = ProcessStatus(Path.Combine(thread, "status"));
            Assert.True(task.GetValueOrDefault("Seccomp") == "2", $"Thread {task.GetValueOrDefault("Name")} ({thread}) is not filtered: Seccomp {task.GetValueOrDefault("Seccomp")}.");
        }
        output.WriteLine($"child {child.Pid}: Seccomp 2, {SeccompFilters(status)} filter(s) (the test host has {hostFilters}), on all {threads.Length} threads");

        // Not vacuous: called directly in the child, the three system calls answer EPERM
        // (unfiltered, setup would make a ring and the other two fail with EBADF or EINVAL).
        Assert.Equal("SECCOMP io_uring_setup=EPERM io_uring_enter=EPERM io_uring_register=EPERM",
            Assert.Single(child.Lines, l => l.StartsWith("SECCOMP ", StringComparison.Ordinal)));

        // Auto chose epoll and said why: io_uring_setup's EPERM, put down to the seccomp filter.
        string selected = Assert.Single(child.Lines, IsEngineSelected);
        Assert.StartsWith("LOG Information Uring.Transport[1] Uring transport: engine Epoll, 2 I/O loop(s). io_uring unusable, using epoll: ", selected);
        Assert.Contains("io_uring_setup failed: EPERM (1)", selected);
        Assert.Contains("runs under a seccomp filter", selected);

        // Served on epoll, over several connections at once, several requests each.
        await Task.WhenAll(Enumerable.Range(0, Connections).Select(i => ServeAsync(child.EndPoint, i)));

        // No io_uring instance in the child (the epoll engine's rings are epoll fds).
        string[] fds = Directory.GetFileSystemEntries($"/proc/{child.Pid}/fd")
            .Select(fd => new FileInfo(fd).LinkTarget ?? "").ToArray();
        Assert.DoesNotContain("anon_inode:[io_uring]", fds);
        Assert.Contains("anon_inode:[eventpoll]", fds);

        // The reason was logged once, not per loop or per connection; nothing went wrong.
        Assert.Single(child.Lines, IsEngineSelected);
        Assert.DoesNotContain(child.Lines, l => l.StartsWith("LOG Warning Uring.Transport", StringComparison.Ordinal));
        child.Terminate();
        Assert.Equal(0, await child.WaitForExitAsync(Limits.Step));
        Assert.Contains("STOPPED", child.Lines);
        Assert.Empty(child.Problems());
    }

    private static bool IsEngineSelected(string line) => line.StartsWith("LOG Information Uring.Transport[1] ", StringComparison.Ordinal);

    private static async Task ServeAsync(IPEndPoint endPoint, int client)
    {
        using RawConnection connection = await RawConnection.ConnectAsync(endPoint);

        await connection.SendAsync(RawConnection.Request("GET", "/engine"));
        RawResponse response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        Assert.Equal("Epoll", response.BodyText);

        await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
        response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        Assert.Equal("Hello, World!", response.BodyText);

        byte[] echo = TestData.Random(EchoSize, seed: client);
        await connection.SendAsync(RawConnection.Request("POST", "/echo", $"Content-Length: {EchoSize}"));
        await connection.SendAsync(echo);
        response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        Assert.True(response.Body.AsSpan().SequenceEqual(echo), $"Client {client}: the echo came back different ({response.Body.Length} bytes).");

        await connection.SendAsync(RawConnection.Request("GET", $"/download?size={DownloadSize}"));
        response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.StatusCode);
        var expected = new byte[DownloadSize];
        new Random(DownloadSize).NextBytes(expected); // what the child's /download sends
        Assert.True(response.Body.AsSpan().SequenceEqual(expected), $"Client {client}: the download came back different ({response.Body.Length} bytes).");
    }

    /// <summary>The "Key: value" lines of a /proc/…/status file.</summary>
    private static IReadOnlyDictionary<string, string> ProcessStatus(string path) => File.ReadLines(path)
        .Select(l => l.Split(':', 2))
        .Where(p => p.Length == 2)
        .ToDictionary(p => p[0], p => p[1].Trim());

    // Seccomp_filters (Linux 5.9+): how many filters apply.
    private static int SeccompFilters(IReadOnlyDictionary<string, string> status) =>
        int.Parse(status.GetValueOrDefault("Seccomp_filters") ?? throw new InvalidOperationException("No Seccomp_filters line in /proc/…/status (Linux 5.9+)."));
}
