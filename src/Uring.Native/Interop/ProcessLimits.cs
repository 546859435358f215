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
    /// The numbers the next new fds would get, lowest first: found by duplicating
    /// <paramref name="anyFd"/> into each (the lowest free number) and closing the copies. Stops after
    /// the first number at or above <paramref name="stopAt"/>, or at EMFILE. Returns how many were found.
    /// </summary>
    public static int LowestFreeFds(int anyFd, Span<int> numbers, long stopAt = long.MaxValue)
    {
        int found = 0;
        while (found < numbers.Length)
        {
            int copy = Libc.fcntl(anyFd, Linux.F_DUPFD_CLOEXEC, 0);
            if (copy < 0) break;
            numbers[found++] = copy;
            if (copy >= stopAt) break;
        }
        for (int i = 0; i < found; i++) Libc.close(numbers[i]);
        return found;
    }
}
