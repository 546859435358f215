using System.Runtime.InteropServices;

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
}
