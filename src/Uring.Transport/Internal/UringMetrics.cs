using System.Diagnostics.Metrics;

namespace Uring.Transport.Internal;

/// <summary>
/// The transport's instruments, meter "Uring.Transport" (dotnet-counters, OpenTelemetry, or a
/// MeterListener read them). Values are summed over every running loop group in the process.
/// </summary>
internal static class UringMetrics
{
    public const string MeterName = "Uring.Transport";

    private static readonly List<IoLoopGroup> s_groups = new();
    private static readonly Meter s_meter = new(MeterName);

    static UringMetrics()
    {
        s_meter.CreateObservableUpDownCounter("uring.transport.connections",
            () => Sum(g => g.Loops.Sum(l => (long)l.ConnectionCount)), "{connection}", "Open connections.");
        s_meter.CreateObservableUpDownCounter("uring.transport.memory_pool.rented",
            () => Sum(g => g.Pool.RentedBytes), "By", "Bytes rented from the pinned block pool.");
        s_meter.CreateObservableUpDownCounter("uring.transport.memory_pool.allocated",
            () => Sum(g => g.Pool.AllocatedBytes), "By", "Bytes held in the pinned block pool's slabs.");
        s_meter.CreateObservableUpDownCounter("uring.transport.loop.queue_length",
            () => Sum(g => g.Loops.Sum(l => (long)l.QueueLength)), "{item}", "Work items waiting for the I/O loops.");
        s_meter.CreateObservableUpDownCounter("uring.transport.provided_buffers.allocated",
            () => Sum(g => g.Loops.Sum(l => l.BufferBytes)), "By", "Receive-buffer memory the loops have provided (grows with load, up to ProvidedBufferCount x ProvidedBufferSize per loop).");
        s_meter.CreateObservableUpDownCounter("uring.transport.provided_buffers.in_use",
            () => Sum(g => g.Loops.Sum(l => (long)l.BuffersInUse)), "{buffer}", "Receive buffers filled by the kernel and not yet recycled.");
    }

    public static void Register(IoLoopGroup group)
    {
        lock (s_groups) s_groups.Add(group);
    }

    public static void Unregister(IoLoopGroup group)
    {
        lock (s_groups) s_groups.Remove(group);
    }

    private static long Sum(Func<IoLoopGroup, long> selector)
    {
        lock (s_groups) return s_groups.Sum(selector);
    }
}
