using Uring.Native;

namespace Uring.Tests;

/// <summary>
/// Runs a test process as if on an older kernel: <c>URING_TEST_KERNEL=5.19</c> (or <c>6.0</c>,
/// <c>6.1</c>) names the features that kernel has, and the tests give every ring only those (the
/// transport's test environment's mask, or the mask a test ring is created with), so the suites
/// exercise the fallbacks. Child processes inherit the variable. Unset: every feature of this kernel.
/// </summary>
internal static class TestKernel
{
    public const string Variable = "URING_TEST_KERNEL";

    /// <summary>The features the variable allows: all when unset.</summary>
    public static RingFeatures Limit { get; } = Parse(Environment.GetEnvironmentVariable(Variable));

    /// <summary>The features <see cref="Limit"/> withholds, as the transport's DisabledKernelFeatures option names them; null for none.</summary>
    public static string? DisabledFeatures => Limit == RingFeatures.All ? null : KernelProbe.Names(RingFeatures.All & ~Limit);

    /// <summary>What a ring created with <see cref="Limit"/> uses of this kernel's features.</summary>
    public static RingFeatures Available => KernelProbe.Current.Features & Limit;

    private static RingFeatures Parse(string? value) => value?.Trim() switch
    {
        null or "" => RingFeatures.All,
        "5.19" => RingFeatures.Linux5_19,
        "6.0" => RingFeatures.Linux6_0,
        "6.1" => RingFeatures.Linux6_1,
        _ => throw new InvalidOperationException($"{Variable}='{value}': expected 5.19, 6.0 or 6.1."),
    };
}
