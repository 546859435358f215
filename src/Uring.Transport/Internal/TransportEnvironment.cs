using System.Net;
using System.Net.Sockets;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// What tests change about the transport's surroundings, in one place, handed to a loop group: the
/// rings (a decorator per loop), the kernel features rings may use (a mask, to run as on an older
/// kernel), a refused io_uring_setup, host name resolution, the unbind
/// bound, and observers (a group that started, an accepted fd). The product runs with
/// <see cref="Default"/>, which changes nothing. None of it is on the public options, none is
/// process-wide, and none decides which loops a client shares: each environment has a
/// <see cref="Registry"/> of its own (<see cref="Default"/>'s is the process's).
/// </summary>
internal sealed record TransportEnvironment
{
    public TransportEnvironment()
    {
    }

    // A copy (with { ... }) is another environment: its groups are not shared with the original's.
    private TransportEnvironment(TransportEnvironment original)
    {
        Registry = new IoLoopGroupRegistry();
        DecorateRing = original.DecorateRing;
        FeatureMask = original.FeatureMask;
        SetupErrno = original.SetupErrno;
        ResolveHost = original.ResolveHost;
        UnbindTimeout = original.UnbindTimeout;
        KeepZeroCopy = original.KeepZeroCopy;
        GroupStarted = original.GroupStarted;
        Accepted = original.Accepted;
    }

    /// <summary>The product's: real rings, every feature the kernel has, the process's registry.</summary>
    public static TransportEnvironment Default { get; } = new();

    /// <summary>Where client connections look for loops: servers of this environment publish theirs here.</summary>
    public IoLoopGroupRegistry Registry { get; } = new();

    /// <summary>Wraps each loop's ring (loop index given), e.g. in a fault-injecting decorator.</summary>
    public Func<IRing, int, IRing>? DecorateRing { get; init; }

    /// <summary>The kernel features rings may use at most, as on an older kernel. Default: all.</summary>
    public RingFeatures FeatureMask { get; init; } = RingFeatures.All;

    /// <summary>A positive errno: io_uring_setup is treated as refused with it (a seccomp filter, kernel.io_uring_disabled).</summary>
    public Func<int>? SetupErrno { get; init; }

    /// <summary>Resolves host names for client connects instead of <see cref="Dns"/>.</summary>
    public Func<string, AddressFamily, CancellationToken, Task<IPAddress[]>>? ResolveHost { get; init; }

    /// <summary>How long an unbind waits for its acceptors to stop.</summary>
    public TimeSpan UnbindTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Keep sending zero-copy after the kernel reported copying (to exercise the path on loopback).</summary>
    public bool KeepZeroCopy { get; init; }

    /// <summary>Observes a group's loops and memory pool once they run.</summary>
    public Action<IoLoopGroup>? GroupStarted { get; init; }

    /// <summary>Runs for each accepted fd before it becomes a connection; may throw.</summary>
    public Action<int>? Accepted { get; init; }
}
