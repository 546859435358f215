namespace Uring.Native.Tests;

internal static class Bytes
{
    /// <summary>Byte-exact comparison that names the first difference instead of dumping megabytes.</summary>
    public static void AssertEqual(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, string what)
    {
        if (expected.SequenceEqual(actual)) return;
        int common = Math.Min(expected.Length, actual.Length);
        int at = expected.Slice(0, common).CommonPrefixLength(actual.Slice(0, common));
        string detail = at < common
            ? $"first difference at offset {at}: expected 0x{expected[at]:x2}, got 0x{actual[at]:x2}"
            : "contents agree up to the shorter length";
        Assert.Fail($"{what}: expected {expected.Length} bytes, got {actual.Length}; {detail}.");
    }
}
