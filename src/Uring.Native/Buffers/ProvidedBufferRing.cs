using System.Runtime.InteropServices;

namespace Uring.Native;

/// <summary>
/// A provided-buffer ring (IORING_REGISTER_PBUF_RING, 5.19): room for <see cref="BufferCount"/>
/// buffers of <see cref="BufferSize"/> bytes that receives with buffer select draw from. The ring
/// entries live in one page-aligned native allocation; the buffers in chunks allocated as they are
/// provided (<see cref="Grow"/>), so a ring that is never busy never holds all its memory. Nothing
/// ever moves. The epoll ring consumes the same entries itself, so both engines see identical behaviour.
/// </summary>
/// <remarks>
/// Not thread-safe: use it on the owning ring's thread. Ownership: the kernel may write a provided
/// buffer from the moment it is published until the completion that names it hands it back; the
/// memory is freed only by <see cref="Dispose"/>, after the ring is unregistered.
/// </remarks>
internal sealed unsafe class ProvidedBufferRing : IDisposable
{
    private const int EntrySize = 16; // struct io_uring_buf { u64 addr; u32 len; u16 bid; u16 resv; }
    private const int TailOffset = 14; // the ring's tail overlays bufs[0].resv
    private readonly int _mask;
    private readonly nuint _ringBytes;
    private readonly int _chunkShift;  // buffers per chunk = 1 << _chunkShift
    private readonly byte*[] _chunks;  // buffer memory, chunk by chunk; null until provided
    private byte* _memory;             // the ring entries
    private ushort _tail;
    private ushort _emulatedHead;

    /// <summary>Creates the ring with every buffer already provided.</summary>
    /// <param name="groupId">The buffer group id receives name (bgid).</param>
    /// <param name="bufferCount">Number of buffers: a power of two, at most 32768.</param>
    /// <param name="bufferSize">Size of each buffer in bytes.</param>
    public ProvidedBufferRing(ushort groupId, int bufferCount, int bufferSize)
        : this(groupId, bufferCount, bufferSize, bufferCount)
    {
    }

    /// <summary>
    /// Creates the ring with <paramref name="initialBuffers"/> of its <paramref name="bufferCount"/>
    /// buffers provided (rounded up to a power of two); <see cref="Grow"/> provides more, a chunk of
    /// that many at a time.
    /// </summary>
    public ProvidedBufferRing(ushort groupId, int bufferCount, int bufferSize, int initialBuffers)
    {
        if (bufferCount < 1 || bufferCount > 32768 || (bufferCount & (bufferCount - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(bufferCount), bufferCount, "Must be a power of two between 1 and 32768.");
        if (bufferSize < 1)
            throw new ArgumentOutOfRangeException(nameof(bufferSize), bufferSize, "Must be positive.");
        ArgumentOutOfRangeException.ThrowIfLessThan(initialBuffers, 1);

        GroupId = groupId;
        BufferCount = bufferCount;
        BufferSize = bufferSize;
        _mask = bufferCount - 1;
        int chunk = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Min(initialBuffers, bufferCount));
        _chunkShift = System.Numerics.BitOperations.Log2((uint)chunk);
        _chunks = new byte*[bufferCount >> _chunkShift];
        _ringBytes = (nuint)(((long)bufferCount * EntrySize + 4095) & ~4095L);
        _memory = (byte*)NativeMemory.AlignedAlloc(_ringBytes, 4096);
        NativeMemory.Clear(_memory, _ringBytes);
        Grow();
    }

    /// <summary>Buffers provided so far (with memory): grows by <see cref="Grow"/> up to <see cref="BufferCount"/>.</summary>
    public int Provided { get; private set; }

    /// <summary>Bytes of buffer memory allocated so far.</summary>
    public long AllocatedBytes => (long)Provided * BufferSize;

    /// <summary>
    /// Provides the next chunk of buffers (allocated now, published at once); false when all
    /// <see cref="BufferCount"/> are provided already.
    /// </summary>
    public bool Grow()
    {
        int chunk = Provided >> _chunkShift;
        if (chunk >= _chunks.Length) return false;
        int perChunk = 1 << _chunkShift;
        _chunks[chunk] = (byte*)NativeMemory.AlignedAlloc((nuint)((long)perChunk * BufferSize), 4096);
        Provided += perChunk;
        for (int bid = chunk * perChunk; bid < Provided; bid++)
            Add((ushort)bid);
        Publish();
        return true;
    }

    /// <summary>The buffer group id (bgid).</summary>
    public ushort GroupId { get; }

    /// <summary>Number of buffers.</summary>
    public int BufferCount { get; }

    /// <summary>Size of each buffer in bytes.</summary>
    public int BufferSize { get; }

    /// <summary>The producer index (the ring's tail) as published.</summary>
    public ushort Tail => _tail;

    /// <summary>The emulation's view: buffers published and not yet taken.</summary>
    internal int EmulatedAvailable => (ushort)(Volatile.Read(ref *(ushort*)(_memory + TailOffset)) - _emulatedHead);

    /// <summary>Address of the ring entries, for IORING_REGISTER_PBUF_RING.</summary>
    public nint RingAddress => (nint)_memory;

    /// <summary>The start of buffer <paramref name="bufferId"/>.</summary>
    public byte* GetBuffer(ushort bufferId)
    {
        if (bufferId >= Provided) throw new ArgumentOutOfRangeException(nameof(bufferId));
        return _chunks[bufferId >> _chunkShift] + (nuint)(bufferId & ((1 << _chunkShift) - 1)) * (nuint)BufferSize;
    }

    /// <summary>The first <paramref name="length"/> bytes of buffer <paramref name="bufferId"/>.</summary>
    public ReadOnlySpan<byte> GetSpan(ushort bufferId, int length)
    {
        if ((uint)length > (uint)BufferSize) throw new ArgumentOutOfRangeException(nameof(length));
        return new ReadOnlySpan<byte>(GetBuffer(bufferId), length);
    }

    /// <summary>Queues buffer <paramref name="bufferId"/> for the ring; visible after <see cref="Publish"/>.</summary>
    public void Add(ushort bufferId)
    {
        byte* entry = _memory + (nuint)(_tail & _mask) * EntrySize;
        *(ulong*)entry = (ulong)GetBuffer(bufferId);
        *(uint*)(entry + 8) = (uint)BufferSize;
        *(ushort*)(entry + 12) = bufferId;
        _tail++;
    }

    /// <summary>Makes every added buffer visible to the kernel (store-release of the tail).</summary>
    public void Publish() => Volatile.Write(ref *(ushort*)(_memory + TailOffset), _tail);

    /// <summary>Gives buffer <paramref name="bufferId"/> back to the ring at once.</summary>
    public void Recycle(ushort bufferId)
    {
        Add(bufferId);
        Publish();
    }

    /// <summary>The emulation's consumer side: takes the next provided buffer, as the kernel would.</summary>
    internal bool TryTake(out ushort bufferId)
    {
        ushort tail = Volatile.Read(ref *(ushort*)(_memory + TailOffset));
        if (_emulatedHead == tail)
        {
            bufferId = 0;
            return false;
        }
        bufferId = *(ushort*)(_memory + (nuint)(_emulatedHead & _mask) * EntrySize + 12);
        _emulatedHead++;
        return true;
    }

    /// <summary>Frees the memory. Unregister from the ring first.</summary>
    public void Dispose()
    {
        if (_memory == null) return;
        NativeMemory.AlignedFree(_memory);
        _memory = null;
        for (int i = 0; i < _chunks.Length; i++)
        {
            if (_chunks[i] != null) NativeMemory.AlignedFree(_chunks[i]);
            _chunks[i] = null;
        }
    }
}
