namespace Uring.Transport.Internal;

/// <summary>
/// One loop's counters: plain fields written by the loop thread (a wake-up, and the rare
/// per-connection events, with an interlocked add by whichever thread sees them), read without
/// locks by the meter (aligned longs: no torn reads on 64-bit), so the hot path pays one add each.
/// </summary>
internal sealed class LoopCounters
{
    /// <summary>Submit-and-wait calls (io_uring_enter, or epoll_wait rounds).</summary>
    public long Enters;

    /// <summary>Operations submitted.</summary>
    public long Submitted;

    /// <summary>Completions handled.</summary>
    public long Completions;

    /// <summary>Non-empty completion batches (completions per batch = Completions / Batches).</summary>
    public long Batches;

    /// <summary>Eventfd writes that woke the loop.</summary>
    public long Wakeups;

    /// <summary>Receives that found no provided buffer (ENOBUFS).</summary>
    public long NoBuffers;

    /// <summary>Connections a listener accepted onto this loop.</summary>
    public long Accepted;

    /// <summary>Connections the peer reset (ECONNRESET, EPIPE and the like on a receive or send).</summary>
    public long Resets;

    /// <summary>Connections ended by an unexpected receive or send errno.</summary>
    public long Errors;

    /// <summary>Connections aborted by the server (Kestrel or the application).</summary>
    public long Aborts;
}
