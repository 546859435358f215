using System.Runtime.InteropServices;

namespace Uring.Native.Tests;

/// <summary>Pinned native memory for an operation's buffer: it never moves while the kernel holds it.</summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    public NativeBuffer(int length)
    {
        Length = length;
        Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), 4096);
        NativeMemory.Clear(Pointer, (nuint)length);
    }

    public byte* Pointer { get; private set; }

    public int Length { get; }

    public Span<byte> Span => new(Pointer, Length);

    /// <summary>Fills the buffer with bytes from a seeded generator, so a peer can rebuild them.</summary>
    public static NativeBuffer Random(int length, int seed)
    {
        var buffer = new NativeBuffer(length);
        new Random(seed).NextBytes(buffer.Span);
        return buffer;
    }

    public void Dispose()
    {
        if (Pointer != null)
        {
            NativeMemory.AlignedFree(Pointer);
            Pointer = null;
        }
    }
}
