using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;

namespace Uring.Soak;

/// <summary>
/// perf/Uring.Perf.App started with --diagnostics on a free loopback port: its output is kept,
/// lines that show a crash or an error are picked out, and it is stopped with SIGTERM.
/// </summary>
internal sealed partial class SoakServer : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly TaskCompletionSource<string> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private SoakServer(Process process) => _process = process;

    public int Pid => _process.Id;

    public IPEndPoint EndPoint { get; private set; } = null!;

    /// <summary>The transport's start-up line: the engine chosen and why.</summary>
    public string EngineLine => _lines.FirstOrDefault(l => l.Contains("Uring.Transport[1]", StringComparison.Ordinal)) ?? "(no engine line)";

    /// <summary>
    /// Lines that show an unhandled exception or an error: SimpleConsole writes "fail:" and "crit:"
    /// for Error and Critical; the runtime writes "Unhandled exception." before it aborts.
    /// </summary>
    public IReadOnlyList<string> Problems() => _lines
        .Where(l => l.Contains(" fail: ", StringComparison.Ordinal) || l.Contains(" crit: ", StringComparison.Ordinal)
            || l.Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase))
        .ToList();

    public static async Task<SoakServer> StartAsync(string transport)
    {
        var start = new ProcessStartInfo(DotnetHost(), [AppDll(), "--transport", transport, "--urls", "http://127.0.0.1:0", "--diagnostics"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment.Remove("URING_TRANSPORT_ENGINE"); // the engine under test, whatever the operator set
        var server = new SoakServer(new Process { StartInfo = start });
        server._process.OutputDataReceived += (_, e) => server.OnLine(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.OnLine(e.Data);
        server._process.Start();
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();

        Task exited = server._process.WaitForExitAsync();
        Task first = await Task.WhenAny(server._listening.Task, exited, Task.Delay(TimeSpan.FromSeconds(60)));
        if (first != server._listening.Task)
        {
            string why = first == exited ? $"exited with {server._process.ExitCode}" : "did not listen within 60 s";
            string tail = string.Join(Environment.NewLine, server._lines.TakeLast(20));
            server.Dispose();
            throw new InvalidOperationException($"The sample server {why}:{Environment.NewLine}{tail}");
        }
        var url = new Uri((await server._listening.Task).Split(';')[0]);
        server.EndPoint = new IPEndPoint(IPAddress.Parse(url.Host), url.Port);
        return server;
    }

    /// <summary>Sends SIGTERM and waits for the exit; returns the exit code, or null if it did not exit in time.</summary>
    public async Task<int?> StopAsync(TimeSpan timeout)
    {
        if (kill(_process.Id, SIGTERM) != 0) return null;
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
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
        if (line.StartsWith("listening on ", StringComparison.Ordinal))
            _listening.TrySetResult(line["listening on ".Length..]);
    }

    /// <summary>The dotnet host running this program (…/dotnet/shared/Microsoft.NETCore.App/x.y.z/ is three levels below it).</summary>
    private static string DotnetHost()
    {
        string host = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        return File.Exists(host) ? host : "dotnet";
    }

    /// <summary>The sample app, built with the same configuration as this program (the project references it for that).</summary>
    private static string AppDll()
    {
        // .../perf/Uring.Soak/bin/<Configuration>/<tfm>/
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string perf = here.Parent!.Parent!.Parent!.Parent!.FullName;
        string dll = Path.Combine(perf, "Uring.Perf.App", "bin", here.Parent.Name, here.Name, "Uring.Perf.App.dll");
        if (!File.Exists(dll)) throw new FileNotFoundException("Build perf/Uring.Perf.App first (building this project builds it).", dll);
        return dll;
    }

    private const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
