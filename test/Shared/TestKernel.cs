using System.Runtime.CompilerServices;
using Uring.Native;

namespace Uring.Tests;

/// <summary>
/// Runs a test process as if on an older kernel: <c>URING_TEST_KERNEL=5.19</c> (or <c>6.0</c>,
/// <c>6.1</c>) withholds from every ring the features that kernel lacks (a test-only mask, see
/// <see cref="KernelProbe"/>), so the suites exercise the fallbacks. Applied when the assembly
/// loads; child processes inherit the variable. Unset: every feature of this kernel.
/// </summary>
internal static class TestKernel
{
    public const string Variable = "URING_TEST_KERNEL";

    /// <summary>The features the variable allows: all when unset.</summary>
    public static RingFeatures Limit { get; } = Parse(Environment.GetEnvironmentVariable(Variable));

    [ModuleInitializer]
    internal static void Apply() => KernelProbe.Limit = Limit;

    private static RingFeatures Parse(string? value) => value?.Trim() switch
    {
        null or "" => RingFeatures.All,
        "5.19" => RingFeatures.Linux5_19,
        "6.0" => RingFeatures.Linux6_0,
        "6.1" => RingFeatures.Linux6_1,
        _ => throw new InvalidOperationException($"{Variable}='{value}': expected 5.19, 6.0 or 6.1."),
    };
}
