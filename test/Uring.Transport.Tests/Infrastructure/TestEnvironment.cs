using Uring.Transport.Internal;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>The transport's test environment as the suite runs it: rings limited to what <see cref="TestKernel"/> allows.</summary>
internal static class TestEnvironment
{
    /// <summary>The suite's environment; <c>with { ... }</c> makes one of a test's own (with a registry of its own).</summary>
    public static TransportEnvironment Suite { get; } = new() { FeatureMask = TestKernel.Limit };

    /// <summary>The suite's environment with each loop's ring wrapped by <paramref name="decorate"/> (loop index given).</summary>
    public static TransportEnvironment Decorated(Func<IRing, int, IRing> decorate) => Suite with { DecorateRing = decorate };
}
