using System.Diagnostics;
using System.Text;

namespace Uring.Perf.Runner.Processes;

/// <summary>What a command printed and how it ended.</summary>
internal sealed record CommandResult(int ExitCode, string StdOut, string StdErr, bool TimedOut, bool Cancelled)
{
    public bool Succeeded => ExitCode == 0 && !TimedOut && !Cancelled;

    /// <summary>The last lines of stderr (or stdout), for error messages.</summary>
    public string Tail(int lines = 15)
    {
        string text = StdErr.Trim().Length > 0 ? StdErr : StdOut;
        string[] all = text.TrimEnd().Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }
}

/// <summary>
/// Every process the runner starts goes through here, so that one call stops them all: on
/// success, failure, Ctrl-C, SIGTERM/SIGHUP and process exit.
/// </summary>
/// <remarks>
/// Children started from the main thread are also wrapped in <c>setpriv --pdeathsig KILL</c>:
/// the kernel then kills them if the runner dies without cleaning up (SIGKILL, a crash).
/// The death signal fires when the forking <em>thread</em> exits, which is why this is done
/// only for processes started on the main thread; the runner starts every child from there.
/// </remarks>
internal static class ChildProcesses
{
    private static readonly object s_lock = new();
    private static readonly List<Process> s_live = [];
    private static readonly int s_mainThreadId = Environment.CurrentManagedThreadId;
    private static readonly string? s_setpriv = Which("setpriv");
    private static bool s_stopping;

    /// <summary>Set once a stop was requested; no new process is started after that.</summary>
    public static CancellationTokenSource Cancellation { get; } = new();

    /// <summary>Starts a process with redirected output; the handlers get each line.</summary>
    public static Process Start(
        string file,
        IEnumerable<string> args,
        Action<string>? onStdOut = null,
        Action<string>? onStdErr = null,
        IDictionary<string, string?>? environment = null,
        string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        if (s_setpriv is not null && Environment.CurrentManagedThreadId == s_mainThreadId)
        {
            psi.FileName = s_setpriv;
            foreach (string a in new[] { "--pdeathsig", "KILL", "--", file })
            {
                psi.ArgumentList.Add(a);
            }
        }
        else
        {
            psi.FileName = file;
        }
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                if (value is null)
                {
                    psi.Environment.Remove(key);
                }
                else
                {
                    psi.Environment[key] = value;
                }
            }
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                onStdOut?.Invoke(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                onStdErr?.Invoke(e.Data);
            }
        };

        lock (s_lock)
        {
            if (s_stopping)
            {
                throw new OperationCanceledException("the runner is stopping");
            }
            process.Start();
            s_live.Add(process);
        }
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// Runs a command to completion, bounded by <paramref name="timeout"/>: past it the process
    /// tree is killed and the result says TimedOut.
    /// </summary>
    public static CommandResult Run(string file, IEnumerable<string> args, TimeSpan timeout, string? workingDirectory = null)
    {
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        Process process;
        try
        {
            process = Start(
                file, args,
                line => { lock (stdout) { stdout.Append(line).Append('\n'); } },
                line => { lock (stderr) { stderr.Append(line).Append('\n'); } },
                workingDirectory: workingDirectory);
        }
        catch (OperationCanceledException)
        {
            return new CommandResult(-1, "", "cancelled", TimedOut: false, Cancelled: true);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new CommandResult(-1, "", $"{file}: {ex.Message}", TimedOut: false, Cancelled: false);
        }

        bool timedOut = false;
        var deadline = Stopwatch.StartNew();
        while (!process.WaitForExit(200))
        {
            if (deadline.Elapsed > timeout)
            {
                timedOut = true;
                break;
            }
            if (Cancellation.IsCancellationRequested)
            {
                break;
            }
        }
        Stop(process);
        process.WaitForExit(); // drains the redirected output
        bool cancelled = !timedOut && Cancellation.IsCancellationRequested;
        int exitCode = SafeExitCode(process);
        process.Dispose();
        lock (stdout)
        {
            lock (stderr)
            {
                return new CommandResult(exitCode, stdout.ToString(), stderr.ToString(), timedOut, cancelled);
            }
        }
    }

    /// <summary>Kills the process and its children (if still running) and forgets it.</summary>
    public static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (Exception)
        {
            // Never started, already reaped, exited while being killed, or disposed by a
            // concurrent Stop: in every case there is nothing left to kill.
        }
        lock (s_lock)
        {
            s_live.Remove(process);
        }
    }

    /// <summary>Stops every live child; no new child starts afterwards. Safe to call from any thread, repeatedly.</summary>
    public static void StopAll()
    {
        Process[] live;
        lock (s_lock)
        {
            s_stopping = true;
            live = [.. s_live];
        }
        foreach (var process in live)
        {
            Stop(process);
        }
    }

    /// <summary>Asks the runner to stop: no new process starts, and every running one is killed.</summary>
    public static void RequestStop()
    {
        try
        {
            Cancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
        StopAll();
    }

    /// <summary>The full path of an executable on PATH, or null.</summary>
    public static string? Which(string name)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & UnixFileMode.UserExecute) != 0)
            {
                return candidate;
            }
        }
        return null;
    }

    private static int SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            return -1;
        }
    }
}
