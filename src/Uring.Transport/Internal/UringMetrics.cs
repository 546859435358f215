using System.Diagnostics;
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
            () => Sum(g => g.Loops.Sum(l => (long)l.Members.Connections)), "{connection}", "Open connections.");
        s_meter.CreateObservableUpDownCounter("uring.transport.memory_pool.rented",
            () => Sum(g => g.Pool.RentedBytes), "By", "Bytes rented from the pinned block pool.");
        s_meter.CreateObservableUpDownCounter("uring.transport.memory_pool.allocated",
            () => Sum(g => g.Pool.AllocatedBytes), "By", "Bytes held in the pinned block pool's slabs.");
        s_meter.CreateObservableUpDownCounter("uring.transport.loop.queue_length",
            () => Sum(g => g.Loops.Sum(l => (long)l.QueueLength)), "{item}", "Work items waiting for the I/O loops.");
        s_meter.CreateObservableUpDownCounter("uring.transport.provided_buffers.allocated",
            () => Sum(g => g.Loops.Sum(l => l.Buffers.AllocatedBytes)), "By", "Receive-buffer memory the loops have provided (grows with load, up to ProvidedBufferCount x ProvidedBufferSize per loop).");
        s_meter.CreateObservableUpDownCounter("uring.transport.provided_buffers.in_use",
            () => Sum(g => g.Loops.Sum(l => (long)l.Buffers.InUse)), "{buffer}", "Receive buffers filled by the kernel and not yet recycled.");

        // Per loop, tagged uring.engine and uring.loop.index (summed over groups that share an index).
        PerLoop("uring.loop.enters", c => c.Enters, "{call}", "Submit-and-wait calls: io_uring_enter (io_uring engine) or epoll_wait rounds (epoll engine).");
        PerLoop("uring.loop.submitted", c => c.Submitted, "{operation}", "Operations submitted (SQEs on the io_uring engine).");
        PerLoop("uring.loop.completions", c => c.Completions, "{completion}", "Completions reaped (CQEs on the io_uring engine); divided by uring.loop.batches: completions per batch.");
        PerLoop("uring.loop.batches", c => c.Batches, "{batch}", "Non-empty batches of completions.");
        PerLoop("uring.loop.wakeups", c => c.Wakeups, "{wakeup}", "Eventfd writes that woke a sleeping loop for work from another thread.");
        PerLoop("uring.loop.no_buffers", c => c.NoBuffers, "{receive}", "Receives that found every provided buffer in use (ENOBUFS); the connection waits for buffers.");
        PerLoop("uring.loop.connections.accepted", c => c.Accepted, "{connection}", "Connections accepted onto the loop.");
        s_meter.CreateObservableCounter("uring.loop.connections.failed", () => Failures(), "{connection}",
            "Connections that ended in failure, by error.type: reset (by the peer), error (an unexpected errno), aborted (by the server).");
    }

    private static void PerLoop(string name, Func<LoopCounters, long> value, string unit, string description) =>
        s_meter.CreateObservableCounter(name, () => Loops(value, null), unit, description);

    private static IEnumerable<Measurement<long>> Failures() =>
        [.. Loops(c => c.Resets, "reset"), .. Loops(c => c.Errors, "error"), .. Loops(c => c.Aborts, "aborted")];

    private static List<Measurement<long>> Loops(Func<LoopCounters, long> value, string? errorType)
    {
        var sums = new Dictionary<(UringEngine Engine, int Index), long>();
        lock (s_groups)
        {
            foreach (IoLoopGroup group in s_groups)
                foreach (IoLoop loop in group.Loops)
                {
                    sums.TryGetValue((loop.Engine, loop.Index), out long sum);
                    sums[(loop.Engine, loop.Index)] = sum + value(loop.Counters);
                }
        }
        var measurements = new List<Measurement<long>>(sums.Count);
        foreach (var ((engine, index), sum) in sums)
        {
            var tags = errorType is null
                ? new TagList { { "uring.engine", EngineName(engine) }, { "uring.loop.index", index } }
                : new TagList { { "uring.engine", EngineName(engine) }, { "uring.loop.index", index }, { "error.type", errorType } };
            measurements.Add(new Measurement<long>(sum, tags));
        }
        return measurements;
    }

    private static string EngineName(UringEngine engine) => engine == UringEngine.IoUring ? "io_uring" : "epoll";

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
