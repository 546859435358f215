namespace Uring.Transport.Tests.Infrastructure;

/// <summary>Polls a condition with a deadline.</summary>
internal static class Eventually
{
    /// <summary>Whether <paramref name="condition"/> held at some poll before <paramref name="timeout"/> passed.</summary>
    public static async Task<bool> HoldsAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > timeout) return false;
            await Task.Delay(20);
        }
        return true;
    }
}
