using System.Runtime.InteropServices;
using Uring.Native.Interop;

namespace Uring.Native;

/// <summary>The calling process's resource limits.</summary>
internal static unsafe partial class ProcessLimits
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, ulong* limits);

    /// <summary>RLIMIT_NOFILE's soft limit: one more than the highest fd number the process may open; long.MaxValue when unknown or unlimited.</summary>
    public static long OpenFiles()
    {
        ulong* limits = stackalloc ulong[2];
        if (getrlimit(Linux.RLIMIT_NOFILE, limits) != 0 || limits[0] > long.MaxValue) return long.MaxValue;
        return (long)limits[0];
    }

    /// <summary>
    /// The lowest free fd numbers, lowest first, found by walking them: each is a copy of
    /// <paramref name="anyFd"/> made at the lowest free number above the last one found and closed
    /// at once, so the walk holds one number at a time (an fd opened meanwhile by another thread
    /// may get the next number up instead). Stops after the first number at or above
    /// <paramref name="stopAt"/>, or at EMFILE. Returns how many were found.
    /// </summary>
    public static int LowestFreeFds(int anyFd, Span<int> numbers, long stopAt = long.MaxValue)
    {
        int found = 0, from = 0;
        while (found < numbers.Length)
        {
            int copy = Libc.fcntl(anyFd, Linux.F_DUPFD_CLOEXEC, from);
            if (copy < 0) break;
            Libc.close(copy);
            numbers[found++] = copy;
            if (copy >= stopAt) break;
            from = copy + 1;
        }
        return found;
    }
}
