using Uring.Native;

namespace Uring.Tests;

/// <summary>
/// Runs test code on a thread of its own bound to one CPU: on loopback a connection's SYN is
/// handled on the CPU of the thread that calls connect(2), so this chooses the receiving CPU.
/// </summary>
internal static class OnCpu
{
    /// <summary>Runs <paramref name="action"/> on a new thread bound to <paramref name="cpu"/>; rethrows what it threw.</summary>
    public static void Run(int cpu, Action action, TimeSpan timeout)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                int pin = NativeThread.PinToCpu(cpu);
                if (pin != 0) throw new InvalidOperationException($"sched_setaffinity to CPU {cpu}: {Errno.Describe(pin)}");
                action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        if (!thread.Join(timeout)) throw new TimeoutException($"The work on CPU {cpu} did not finish within {timeout.TotalSeconds} s.");
        if (failure is not null) throw new InvalidOperationException($"The work on CPU {cpu} failed: {failure.Message}", failure);
    }
}
