using System.Globalization;
using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Measure;

/// <summary>
/// Counts a server's system calls during a load run with
/// <c>perf stat -e raw_syscalls:sys_enter -p PID -- LOAD-COMMAND</c>: perf counts for exactly
/// as long as the load command runs, so the count and the load tool's request count cover the
/// same window.
/// </summary>
/// <remarks>
/// The tracepoint costs the server a little per syscall while enabled (the same for every
/// contender per syscall); <c>--no-syscalls</c> turns counting off.
/// </remarks>
internal sealed class SyscallCounter
{
    private const string Event = "raw_syscalls:sys_enter";

    private SyscallCounter(string perf, string version)
    {
        PerfPath = perf;
        Version = version;
    }

    public string PerfPath { get; }

    /// <summary>"perf version 6.1.x".</summary>
    public string Version { get; }

    /// <summary>
    /// Finds perf and checks that the tracepoint counts on this kernel, by counting the syscalls
    /// of a short command. Returns null and a reason when it does not.
    /// </summary>
    public static SyscallCounter? Probe(out string? whyNot)
    {
        string? perf = ChildProcesses.Which("perf");
        if (perf is null)
        {
            whyNot = "perf is not installed (Debian package linux-perf)";
            return null;
        }
        string version = ChildProcesses.Run(perf, ["--version"], TimeSpan.FromSeconds(10)).StdOut.Trim();
        string output = Path.Combine(Path.GetTempPath(), $"uring-perf-probe-{Environment.ProcessId}.csv");
        try
        {
            var result = ChildProcesses.Run(
                perf,
                ["stat", "-x", ",", "-o", output, "-e", Event, "--", "sleep", "0.1"],
                TimeSpan.FromSeconds(15));
            long? count = File.Exists(output) ? ParseCount(File.ReadAllText(output)) : null;
            if (!result.Succeeded || count is not > 0)
            {
                string detail = File.Exists(output) ? File.ReadAllText(output).Trim() : result.Tail(3);
                whyNot = $"perf stat -e {Event} does not count here ({detail.ReplaceLineEndings(" ")})";
                return null;
            }
        }
        finally
        {
            File.Delete(output);
        }
        whyNot = null;
        return new SyscallCounter(perf, version.Length > 0 ? version : "perf");
    }

    /// <summary>The command line that runs <paramref name="command"/> under perf, counting <paramref name="pid"/>'s syscalls into <paramref name="outputFile"/>.</summary>
    public IReadOnlyList<string> Wrap(int pid, string outputFile, IReadOnlyList<string> command) =>
        [PerfPath, "stat", "-x", ",", "-o", outputFile, "-e", Event, "-p", pid.ToString(CultureInfo.InvariantCulture), "--", .. command];

    /// <summary>Reads the count perf wrote; null if it did not count.</summary>
    public static long? ReadCount(string outputFile)
    {
        try
        {
            return File.Exists(outputFile) ? ParseCount(File.ReadAllText(outputFile)) : null;
        }
        finally
        {
            File.Delete(outputFile);
        }
    }

    // perf stat -x, lines: "547795,,raw_syscalls:sys_enter,2915068481,100.00,," or
    // "<not counted>,,raw_syscalls:sys_enter,0,100.00,,"; comment lines start with '#'.
    private static long? ParseCount(string text)
    {
        foreach (string line in text.Split('\n'))
        {
            string[] fields = line.Split(',');
            if (fields.Length >= 3 && fields[2].Trim() == Event)
            {
                return long.TryParse(fields[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : null;
            }
        }
        return null;
    }
}
