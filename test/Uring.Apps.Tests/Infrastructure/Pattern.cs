namespace Uring.Apps.Tests.Infrastructure;

/// <summary>Deterministic bodies, so both ends of a test can rebuild what should arrive.</summary>
internal static class Pattern
{
    public static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexString(SHA256.HashData(bytes));
}
