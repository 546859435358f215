using System.Globalization;
using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Measure;

/// <summary>CPU time from /proc, in clock ticks (<c>getconf CLK_TCK</c>).</summary>
internal static class CpuTime
{
    /// <summary>Clock ticks per second, read once from <c>getconf CLK_TCK</c> (100 unless the kernel says otherwise).</summary>
    public static long TicksPerSecond { get; } = ReadClockTick();

    /// <summary>utime + stime of a process (all its threads), fields 14 and 15 of /proc/PID/stat; null if it is gone.</summary>
    public static long? ProcessTicks(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        // Field 2 (comm) is in parentheses and may contain spaces: count fields after the last ')'.
        // After it come field 3 (state), ..., so field N is at index N - 3.
        string[] rest = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        long utime = long.Parse(rest[14 - 3], CultureInfo.InvariantCulture);
        long stime = long.Parse(rest[15 - 3], CultureInfo.InvariantCulture);
        return utime + stime;
    }

    /// <summary>Busy and total ticks of each listed CPU from /proc/stat (busy = all but idle and iowait).</summary>
    public static CoreTicks Cores(IReadOnlyList<int> cpus)
    {
        long busy = 0, total = 0;
        foreach (string line in File.ReadLines("/proc/stat"))
        {
            if (!line.StartsWith("cpu", StringComparison.Ordinal) || line.Length < 4 || !char.IsAsciiDigit(line[3]))
            {
                continue;
            }
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            int cpu = int.Parse(f[0].AsSpan(3), CultureInfo.InvariantCulture);
            if (!cpus.Contains(cpu))
            {
                continue;
            }
            // user nice system idle iowait irq softirq steal (guest time is already in user).
            long[] v = [.. f.Skip(1).Take(8).Select(x => long.Parse(x, CultureInfo.InvariantCulture))];
            long idle = v[3] + v[4];
            long all = v.Sum();
            busy += all - idle;
            total += all;
        }
        return new CoreTicks(busy, total);
    }

    private static long ReadClockTick()
    {
        var result = ChildProcesses.Run("getconf", ["CLK_TCK"], TimeSpan.FromSeconds(10));
        return result.Succeeded && long.TryParse(result.StdOut.Trim(), CultureInfo.InvariantCulture, out long hz) && hz > 0 ? hz : 100;
    }
}

/// <summary>Busy and total ticks of a set of CPUs; the difference of two samples gives the busy share.</summary>
internal readonly record struct CoreTicks(long Busy, long Total)
{
    /// <summary>How busy the CPUs were between <paramref name="before"/> and this sample, in % (averaged over the CPUs).</summary>
    public double? BusyPercentSince(CoreTicks before)
    {
        long total = Total - before.Total;
        return total <= 0 ? null : 100.0 * (Busy - before.Busy) / total;
    }
}
