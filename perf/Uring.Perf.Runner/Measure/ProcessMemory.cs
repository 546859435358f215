using System.Diagnostics;
using System.Globalization;

namespace Uring.Perf.Runner.Measure;

/// <summary>A process's resident memory (VmRSS in /proc/PID/status) and open fds (/proc/PID/fd).</summary>
internal static class ProcessMemory
{
    /// <summary>VmRSS in KiB; null if the process is gone.</summary>
    public static long? RssKiB(int pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    // "VmRSS:	   95092 kB"
                    string number = line["VmRSS:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                    return long.Parse(number, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return null;
    }

    /// <summary>The number of open fds; null if the process is gone.</summary>
    public static int? OpenFds(int pid)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/fd").Count();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads the RSS once a second until two reads in a row are within <paramref name="tolerance"/>
    /// of each other (at least one second after the call), for at most <paramref name="maxSeconds"/>:
    /// returns the last read, the seconds it took and whether it settled. RSS null: the process is gone.
    /// </summary>
    public static (long? RssKiB, double Seconds, bool Settled) Settle(int pid, double tolerance, int maxSeconds, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        long? previous = RssKiB(pid);
        while (previous is long before && clock.Elapsed.TotalSeconds < maxSeconds && !cancel.IsCancellationRequested)
        {
            Thread.Sleep(1000);
            long? now = RssKiB(pid);
            if (now is long after && Math.Abs(after - before) <= tolerance * before)
            {
                return (after, clock.Elapsed.TotalSeconds, true);
            }
            previous = now;
        }
        return (previous, clock.Elapsed.TotalSeconds, false);
    }
}
