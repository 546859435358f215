namespace Uring.Transport;

/// <summary>How the I/O loops' threads are placed on CPUs (<see cref="UringTransportOptions.LoopAffinity"/>).</summary>
public enum LoopAffinity
{
    /// <summary>Bound when there is exactly one loop per CPU the process may use (sched_getaffinity), otherwise free. The default.</summary>
    Auto = 0,

    /// <summary>Loop i bound to the i-th CPU the process may use, round-robin, whatever the number of loops.</summary>
    Pinned = 1,

    /// <summary>Never bound: the kernel places the loops' threads.</summary>
    None = 2,
}
