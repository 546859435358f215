using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>
/// The tests that start child processes: they run alone, after the parallel tests. From fork until
/// its exec has closed them, a child holds copies of all this process's fds, so a listener another
/// test's server closes meanwhile is closed for real only when the child's exec completes, up to a
/// quarter of a second later on a busy machine (measured), and <see cref="TcpTable.AssertClosedAsync"/>
/// finds it still listening.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ChildProcessCollection : ICollectionFixture<ChildProcessCollection.Running>
{
    public const string Name = "Child processes (run alone)";

    /// <summary>Exists while the collection's tests run, the only time a child may be started.</summary>
    public sealed class Running : IDisposable
    {
        private static int s_count;

        public Running() => Interlocked.Increment(ref s_count);

        public static bool Now => Volatile.Read(ref s_count) > 0;

        public void Dispose() => Interlocked.Decrement(ref s_count);
    }
}

/// <summary>
/// test/Uring.Transport.ChildServer running in a process of its own (see its Program.cs for the
/// line protocol): for what the test host must not suffer, such as a low fd limit or SIGTERM.
/// Only tests in <see cref="ChildProcessCollection"/> may start one. Disposing kills it if it is
/// still running.
/// </summary>
internal sealed partial class ChildServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ITestOutputHelper? _output;

    private ChildServerProcess(Process process, ITestOutputHelper? output)
    {
        _process = process;
        _output = output;
    }

    /// <summary>Every line the child wrote so far, stdout and stderr interleaved.</summary>
    public IReadOnlyCollection<string> Lines => _lines;

    public int Pid => _process.Id;

    /// <summary>The loopback port the child listens on (from its READY line).</summary>
    public int Port { get; private set; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    /// <summary>
    /// Starts the child on <paramref name="engine"/> and waits for it to listen; with <paramref name="fdHeadroom"/>,
    /// its fd limit lets it open exactly that many more fds once listening; with <paramref name="denyIoUring"/>,
    /// it runs under a seccomp filter that answers the io_uring system calls with EPERM (it writes a SECCOMP line);
    /// <paramref name="backlog"/> sets UringTransportOptions.Backlog.
    /// </summary>
    public static async Task<ChildServerProcess> StartAsync(UringEngine engine, ITestOutputHelper? output, int? fdHeadroom = null, bool denyIoUring = false, int? backlog = null)
    {
        ChildServerProcess child = Launch(engine, output, fdHeadroom, denyIoUring: denyIoUring, backlog: backlog);
        try
        {
            string ready = await child.WaitForLineAsync(l => l.StartsWith("READY ", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            child.Port = int.Parse(ready["READY ".Length..]);
            return child;
        }
        catch
        {
            child.Dispose();
            throw;
        }
    }

    /// <summary>Starts the child without waiting for it to listen; <paramref name="environment"/> adds variables.</summary>
    public static ChildServerProcess Launch(UringEngine engine, ITestOutputHelper? output, int? fdHeadroom = null,
        IReadOnlyDictionary<string, string>? environment = null, bool denyIoUring = false, int? backlog = null)
    {
        if (!ChildProcessCollection.Running.Now)
            throw new InvalidOperationException($"Start child processes only from tests in [Collection(ChildProcessCollection.Name)]: see {nameof(ChildProcessCollection)} for why.");
        string[] args = [ChildDll(), "--engine", engine.ToString(), .. fdHeadroom is int n ? new[] { "--fd-headroom", n.ToString() } : [],
            .. denyIoUring ? new[] { "--seccomp-deny-io-uring" } : [], .. backlog is int b ? new[] { "--backlog", b.ToString() } : []];
        var start = new ProcessStartInfo(DotnetHost(), args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment.Remove("URING_TRANSPORT_ENGINE"); // the engine under test, whatever the operator set
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        var process = new Process { StartInfo = start };
        var child = new ChildServerProcess(process, output);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data is null ? null : "stderr: " + e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The first line (already written or still to come) that matches; fails after <paramref name="timeout"/>.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            bool exited = _process.HasExited;
            if (exited) _process.WaitForExit(); // the last lines are in once this returns
            string? found = _lines.FirstOrDefault(match);
            if (found is not null) return found;
            if (exited) Assert.Fail($"The child exited ({_process.ExitCode}) without the line expected. It wrote:{Environment.NewLine}{Tail()}");
            if (deadline.Elapsed > timeout) Assert.Fail($"The child did not write the line expected within {timeout.TotalSeconds} s. It wrote:{Environment.NewLine}{Tail()}");
            await Task.Delay(20);
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The CPU time (user and system) the child uses over <paramref name="period"/>.</summary>
    public async Task<TimeSpan> CpuTimeOverAsync(TimeSpan period)
    {
        _process.Refresh();
        TimeSpan before = _process.TotalProcessorTime;
        await Task.Delay(period);
        _process.Refresh();
        return _process.TotalProcessorTime - before;
    }

    /// <summary>Sends SIGTERM, as a service manager or Kubernetes does to stop the process.</summary>
    public void Terminate() => Signal(SIGTERM);

    /// <summary>SIGSTOP: the child runs no code (the kernel still completes handshakes into its listen backlog) until <see cref="Continue"/>.</summary>
    public void Freeze() => Signal(SIGSTOP);

    public void Continue() => Signal(SIGCONT);

    /// <summary>How many fds the child has open now (/proc/PID/fd).</summary>
    public int OpenFds() => Directory.GetFileSystemEntries($"/proc/{_process.Id}/fd").Length;

    /// <summary>The child's fds numbered <paramref name="first"/> and up, with what each is (12 -> "socket:[345]").</summary>
    public SortedDictionary<int, string> FdsFrom(int first)
    {
        var found = new SortedDictionary<int, string>();
        foreach (string path in Directory.GetFileSystemEntries($"/proc/{_process.Id}/fd"))
        {
            if (!int.TryParse(Path.GetFileName(path), out int fd) || fd < first) continue;
            try
            {
                found[fd] = new FileInfo(path).LinkTarget ?? "?";
            }
            catch (IOException)
            {
                // closed while we looked
            }
        }
        return found;
    }

    private void Signal(int signal)
    {
        if (kill(_process.Id, signal) != 0)
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Waits for the child to exit and returns its exit code; fails after <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"The child did not exit within {timeout.TotalSeconds} s. It wrote:{Environment.NewLine}{Tail()}");
        }
        return _process.ExitCode;
    }

    /// <summary>Lines that show a crash or an error: an unhandled exception, or a log entry at Error or Critical.</summary>
    public IReadOnlyList<string> Problems() => _lines
        .Where(l => l.Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase)
            || l.StartsWith("LOG Error ", StringComparison.Ordinal) || l.StartsWith("LOG Critical ", StringComparison.Ordinal))
        .ToList();

    public string Tail(int count = 60) => string.Join(Environment.NewLine, _lines.TakeLast(count));

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        _lines.Enqueue(line);
        try
        {
            _output?.WriteLine("child: " + line);
        }
        catch (InvalidOperationException)
        {
            // the test has finished
        }
    }

    /// <summary>The dotnet host running this test (…/dotnet/shared/Microsoft.NETCore.App/x.y.z/ is three levels below it).</summary>
    private static string DotnetHost()
    {
        string host = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        return File.Exists(host) ? host : "dotnet";
    }

    /// <summary>The child's dll, built with the same configuration as this test assembly (the test project references it).</summary>
    private static string ChildDll()
    {
        // .../test/Uring.Transport.Tests/bin/<Configuration>/<tfm>/
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = here.Name, configuration = here.Parent!.Name;
        string testDirectory = here.Parent.Parent!.Parent!.Parent!.FullName;
        string dll = Path.Combine(testDirectory, "Uring.Transport.ChildServer", "bin", configuration, tfm, "Uring.Transport.ChildServer.dll");
        if (!File.Exists(dll)) throw new FileNotFoundException("Build test/Uring.Transport.ChildServer first (the solution builds it).", dll);
        return dll;
    }

    private const int SIGCONT = 18, SIGSTOP = 19, SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
