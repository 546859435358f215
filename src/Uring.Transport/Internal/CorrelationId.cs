namespace Uring.Transport.Internal;

/// <summary>Connection ids like Kestrel's: 13 base-32 characters of a counter that starts at a random point.</summary>
internal static class CorrelationId
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
    private static long s_last = Random.Shared.NextInt64();

    public static string Next() => string.Create(13, Interlocked.Increment(ref s_last), static (span, id) =>
    {
        for (int i = 12; i >= 0; i--)
        {
            span[i] = Alphabet[(int)(id & 31)];
            id >>= 5;
        }
    });
}
