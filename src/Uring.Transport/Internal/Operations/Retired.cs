using System.Collections.Concurrent;

namespace Uring.Transport.Internal;

/// <summary>
/// What the kernel may still touch after its loop gave up on it (an operation abandoned in the
/// kernel: its iovecs, pins, leases, pipe memory): rooted here for the life of the process, so it
/// is neither freed, nor collected, nor handed out again.
/// </summary>
internal static class Retired
{
    private static readonly ConcurrentBag<object> s_kept = new();

    public static void Keep(object memory) => s_kept.Add(memory);

    /// <summary>How many objects were retired (tests).</summary>
    public static int Count => s_kept.Count;
}
