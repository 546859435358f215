namespace Uring.Native;

/// <summary>What kind of ring to create and how large.</summary>
public sealed class RingOptions
{
    /// <summary>
    /// The environment variable operators set to force an engine: <c>iouring</c>, <c>epoll</c> or <c>auto</c>.
    /// It overrides <see cref="Engine"/>.
    /// </summary>
    public const string EngineEnvironmentVariable = "URING_TRANSPORT_ENGINE";

    /// <summary>The engine asked for. Default: <see cref="RingEngine.Auto"/>.</summary>
    public RingEngine Engine { get; set; } = RingEngine.Auto;

    /// <summary>Submission queue entries (a power of two; the kernel rounds up). The completion queue gets 4x. Default: 256.</summary>
    public int Entries { get; set; } = 256;

    /// <summary>
    /// Test hook: when set and returning a positive errno, io_uring_setup is treated as having
    /// failed with it (how a seccomp filter or <c>kernel.io_uring_disabled</c> would answer).
    /// </summary>
    internal Func<int>? InjectSetupErrno { get; set; }

    /// <summary>Test hook: the features a ring of these options may use at most. Default: all the kernel has.</summary>
    internal RingFeatures FeatureLimit { get; set; } = RingFeatures.All;
}

/// <summary>The engine chosen for a set of options, and why.</summary>
/// <param name="Engine">Either <see cref="RingEngine.IoUring"/> or <see cref="RingEngine.Epoll"/>.</param>
/// <param name="Reason">A human-readable reason, naming errno values, sysctls or missing opcodes.</param>
public sealed record EngineSelection(RingEngine Engine, string Reason);
