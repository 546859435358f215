using System.Globalization;
using System.Runtime.InteropServices;

namespace Uring.Perf.Runner.Processes;

/// <summary>
/// RLIMIT_NOFILE: the idle scenario holds 10,000 connections, an fd each on both sides. The
/// servers raise their soft limit in the shell that starts them (<see cref="ShellPrefix"/>); the
/// runner, which opens the client sockets itself, raises its own through setrlimit (.NET has no
/// API for it; the runtime raises the soft limit to the hard one at start-up, but not everywhere).
/// </summary>
internal static partial class FileLimit
{
    /// <summary>The soft limit wanted on both sides: 10,000 idle connections plus room.</summary>
    public const int Wanted = 20_000;

    private const int RlimitNofile = 7; // Linux, every architecture .NET runs on

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [DllImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static extern int GetRLimit(int resource, out RLimit limit);

    [DllImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static extern int SetRLimit(int resource, ref RLimit limit);

    /// <summary>
    /// The sh script (argument 1: the limit wanted, then the command) that raises the soft limit to
    /// <see cref="Wanted"/>, or to the hard limit if that is lower, and execs the command: the PID
    /// stays the command's.
    /// </summary>
    public static IReadOnlyList<string> ShellPrefix { get; } =
    [
        "sh", "-c",
        "want=$1; shift; n=$(ulimit -n); h=$(ulimit -Hn); " +
        "if [ \"$n\" != unlimited ] && [ \"$n\" -lt \"$want\" ]; then " +
        "if [ \"$h\" = unlimited ] || [ \"$h\" -ge \"$want\" ]; then ulimit -n \"$want\"; else ulimit -n \"$h\"; fi; fi; " +
        "exec \"$@\"",
        "sh", Wanted.ToString(CultureInfo.InvariantCulture),
    ];

    /// <summary>Raises this process's soft limit to <paramref name="wanted"/> (or the hard limit); returns the soft limit now in force, null if unknown.</summary>
    public static long? RaiseOwn(long wanted)
    {
        try
        {
            if (GetRLimit(RlimitNofile, out RLimit limit) != 0)
            {
                return null;
            }
            ulong target = Math.Min((ulong)wanted, limit.Maximum);
            if (limit.Current < target)
            {
                var raised = new RLimit { Current = target, Maximum = limit.Maximum };
                if (SetRLimit(RlimitNofile, ref raised) == 0)
                {
                    limit.Current = target;
                }
            }
            return limit.Current > long.MaxValue ? long.MaxValue : (long)limit.Current;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>A process's soft "Max open files" from /proc/PID/limits; null if unreadable, long.MaxValue for unlimited.</summary>
    public static long? OfProcess(int pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    string soft = line["Max open files".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                    return soft == "unlimited" ? long.MaxValue : long.Parse(soft, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return null;
    }
}
