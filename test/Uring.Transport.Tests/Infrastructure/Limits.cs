namespace Uring.Transport.Tests.Infrastructure;

/// <summary>Time bounds, so a transport that hangs fails a test instead of the whole run.</summary>
internal static class Limits
{
    /// <summary>Upper bound for one step of a test (a request, a read, a signal from the app).</summary>
    public static readonly TimeSpan Step = TimeSpan.FromSeconds(30);

    /// <summary>How long a graceful stop may take before the test fails (Kestrel then aborts).</summary>
    public static readonly TimeSpan Stop = TimeSpan.FromSeconds(10);

    /// <summary>A token that fires after <see cref="Step"/>.</summary>
    public static CancellationToken StepToken() => new CancellationTokenSource(Step).Token;
}
