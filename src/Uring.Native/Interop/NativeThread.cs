using System.Runtime.InteropServices;

namespace Uring.Native;

/// <summary>Scheduling settings for the calling thread.</summary>
internal static unsafe partial class NativeThread
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setscheduler(int pid, int policy, int* param);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_getaffinity(int pid, nuint size, ulong* mask);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setaffinity(int pid, nuint size, ulong* mask);

    [LibraryImport("libc")]
    private static partial int gettid();

    private const int MaskWords = 16; // 1024 CPUs

    /// <summary>The kernel's id of the calling thread (its /proc/self/task entry).</summary>
    public static int CurrentThreadId() => gettid();

    /// <summary>The CPUs the calling thread may run on (sched_getaffinity), in order; empty if unknown.</summary>
    public static int[] AllowedCpus()
    {
        ulong* mask = stackalloc ulong[MaskWords];
        if (sched_getaffinity(0, MaskWords * sizeof(ulong), mask) < 0) return [];
        var cpus = new List<int>();
        for (int word = 0; word < MaskWords; word++)
            for (int bit = 0; bit < 64; bit++)
                if ((mask[word] & (1UL << bit)) != 0) cpus.Add(word * 64 + bit);
        return [.. cpus];
    }

    /// <summary>Binds the calling thread to <paramref name="cpu"/> (sched_setaffinity). Returns 0 or a negative errno.</summary>
    public static int PinToCpu(int cpu)
    {
        if ((uint)cpu >= MaskWords * 64) return -22; // EINVAL
        ulong* mask = stackalloc ulong[MaskWords];
        new Span<ulong>(mask, MaskWords).Clear();
        mask[cpu / 64] = 1UL << (cpu % 64);
        return sched_setaffinity(0, MaskWords * sizeof(ulong), mask) < 0 ? -Marshal.GetLastPInvokeError() : 0;
    }

    /// <summary>
    /// SCHED_BATCH for the calling thread: a wake-up no longer preempts the running thread, so work
    /// handed to a sleeping loop accumulates into one batch. Returns 0 or a negative errno.
    /// </summary>
    public static int SetBatchScheduling()
    {
        int priority = 0;
        return sched_setscheduler(0, Linux.SCHED_BATCH, &priority) < 0 ? -Marshal.GetLastPInvokeError() : 0;
    }
}
