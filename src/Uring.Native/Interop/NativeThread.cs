using System.Runtime.InteropServices;

namespace Uring.Native;

/// <summary>Scheduling settings for the calling thread.</summary>
public static unsafe partial class NativeThread
{
    private const int SCHED_BATCH = 3;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setscheduler(int pid, int policy, int* param);

    /// <summary>
    /// SCHED_BATCH for the calling thread: a wake-up no longer preempts the running thread, so work
    /// handed to a sleeping loop accumulates into one batch. Returns 0 or a negative errno.
    /// </summary>
    public static int SetBatchScheduling()
    {
        int priority = 0;
        return sched_setscheduler(0, SCHED_BATCH, &priority) < 0 ? -Marshal.GetLastPInvokeError() : 0;
    }
}
