using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>The engine a group runs, why, and the optional kernel features its rings may use.</summary>
internal sealed record EngineSelection(UringEngine Engine, string Reason, RingFeatures Features);

/// <summary>
/// Chooses the engine once per group and creates its rings. <c>URING_TRANSPORT_ENGINE</c> overrides
/// <see cref="UringTransportOptions.Engine"/>; Auto picks io_uring only if the kernel probe (run once
/// per process, <see cref="KernelProbe"/>) set a ring up, round-tripped a NOP, registered a
/// provided-buffer ring and found every opcode needed; otherwise epoll. The features rings use are
/// the kernel's, less the operator's <see cref="UringTransportOptions.DisabledKernelFeatures"/> and
/// the environment's test mask.
/// </summary>
internal static class EngineSelector
{
    /// <summary>The environment variable operators set to force an engine: <c>iouring</c>, <c>epoll</c> or <c>auto</c>.</summary>
    public const string EnvironmentVariable = "URING_TRANSPORT_ENGINE";

    /// <summary>The engine asked for: the environment variable's, else the options'. Throws <see cref="ArgumentException"/> for an unknown value.</summary>
    public static UringEngine Requested(UringEngine configured, out string source)
    {
        string? variable = System.Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(variable))
        {
            source = $"Engine={configured} in options";
            return configured;
        }
        source = $"{EnvironmentVariable}={variable.Trim()}";
        return Parse(variable);
    }

    /// <summary>Parses iouring / io_uring / epoll / auto, case-insensitive.</summary>
    public static UringEngine Parse(string value) => value.Trim().ToLowerInvariant() switch
    {
        "iouring" or "io_uring" or "io-uring" or "uring" => UringEngine.IoUring,
        "epoll" => UringEngine.Epoll,
        "auto" or "" => UringEngine.Auto,
        _ => throw new ArgumentException($"{EnvironmentVariable}='{value}' is not an engine; use iouring, epoll or auto.", EnvironmentVariable),
    };

    public static EngineSelection Select(UringTransportOptions options, TransportEnvironment environment)
    {
        RingFeatures features = environment.FeatureMask & ~ParseFeatures(options.DisabledKernelFeatures);
        UringEngine requested = Requested(options.Engine, out string source);
        if (requested == UringEngine.Epoll) return new(UringEngine.Epoll, $"epoll forced by {source}", features);
        KernelProbe probe = Probe(environment);
        string described = probe.Problem is null ? $" ({probe.Describe(features)})" : "";
        if (requested == UringEngine.IoUring) return new(UringEngine.IoUring, $"io_uring forced by {source}{described}", features);
        // Auto from the options goes without saying; from the variable it is worth a word.
        string auto = source.StartsWith(EnvironmentVariable, StringComparison.Ordinal) ? $" (Auto by {source})" : "";
        if (probe.Problem is null) return new(UringEngine.IoUring, $"io_uring available{auto}{described}", features);
        string problem = probe.SetupErrno != 0 ? $"{probe.Problem}: {KernelProbe.Explain(probe.SetupErrno)}" : probe.Problem;
        return new(UringEngine.Epoll, $"io_uring unusable, using epoll{auto}: {problem}", features);
    }

    /// <summary>
    /// On the loop's own thread: SCHED_BATCH, the CPU binding asked for, and an enabled ring of the
    /// selected engine (decorated by the environment). Returns the ring, the CPU it is bound to, and
    /// how it was set up (for the loop's log line).
    /// </summary>
    /// <exception cref="RingException">io_uring was selected and its set-up failed (the message says why and what to do).</exception>
    public static (IRing Ring, int? BoundCpu, string Detail) OpenRing(LoopSettings settings, int index, int? cpu)
    {
        // No wake-up preemption: work handed to a sleeping loop (a response flushed on the thread
        // pool) then accumulates until the producer yields, instead of each hand-off costing two
        // context switches. Measured on one core: about -22% CPU per request, lower p50 and p99.
        int batch = NativeThread.SetBatchScheduling();
        string detail = batch == 0 ? "SCHED_BATCH" : $"SCHED_BATCH refused ({Errno.Describe(batch)})";
        int? bound = null;
        if (cpu is int c)
        {
            int pin = NativeThread.PinToCpu(c);
            if (pin == 0) bound = c;
            detail += pin == 0 ? $", on CPU {c}" : $", CPU {c} refused ({Errno.Describe(pin)})";
        }
        IRing ring = settings.Engine == UringEngine.IoUring
            ? CreateIoUring(settings)
            : new EpollRing(settings.Entries, settings.Features);
        try
        {
            if (settings.Environment.DecorateRing is { } decorate) ring = decorate(ring, index);
            ring.Enable();
            return (ring, bound, $"{ring.Description}, {detail}");
        }
        catch
        {
            ring.Dispose();
            throw;
        }
    }

    private static IoUringRing CreateIoUring(LoopSettings settings)
    {
        try
        {
            int injected = settings.Environment.SetupErrno?.Invoke() ?? 0;
            if (injected > 0) throw new RingException("io_uring_setup", injected);
            return IoUringRing.Create(settings.Entries, settings.Features);
        }
        catch (RingException e)
        {
            throw new RingException(e.Errno, $"Engine=IoUring was requested, but {e.Message.Replace(" failed: ", " failed with ")}: {KernelProbe.Explain(e.Errno)}");
        }
    }

    private static KernelProbe Probe(TransportEnvironment environment)
    {
        int injected = environment.SetupErrno?.Invoke() ?? 0;
        return injected > 0 ? KernelProbe.Refused(injected) : KernelProbe.Current;
    }

    /// <summary>
    /// The features named in <paramref name="names"/> (comma-separated, as the engine's log line
    /// lists them, case-insensitive); none for null or empty. Throws <see cref="ArgumentException"/> naming an unknown one.
    /// </summary>
    public static RingFeatures ParseFeatures(string? names)
    {
        RingFeatures features = RingFeatures.None;
        foreach (string name in (names ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!char.IsLetter(name[0]) || !Enum.TryParse(name, ignoreCase: true, out RingFeatures feature) || !IsSingleFeature(feature))
                throw new ArgumentException($"'{name}' is not a kernel feature; known: {KernelProbe.Names(RingFeatures.All)}.");
            features |= feature;
        }
        return features;
    }

    private static bool IsSingleFeature(RingFeatures feature) =>
        feature != RingFeatures.None && (feature & (feature - 1)) == 0 && (feature & ~RingFeatures.All) == 0;
}
