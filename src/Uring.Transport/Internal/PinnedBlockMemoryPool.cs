using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Uring.Transport.Internal;

/// <summary>
/// The transport's memory pool: 4 KiB blocks carved from pinned slabs on the pinned object heap, so
/// the kernel can read and write them without the GC moving anything. Blocks are never freed, only
/// returned; rentals larger than a block get a one-off pinned array.
/// </summary>
internal sealed class PinnedBlockMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 4096;
    private const int BlocksPerSlab = 32; // 128 KiB slabs

    // Memory the kernel may still read (a send whose completion never came, at a loop's teardown):
    // rooted here for good, so it is neither handed out again nor collected.
    private static readonly ConcurrentBag<object> s_retired = new();

    private readonly ConcurrentQueue<Block> _free = new();
    private long _rentedBytes;
    private long _allocatedBytes;
    private int _disposed;

    public override int MaxBufferSize => BlockSize;

    /// <summary>Bytes currently rented out (blocks and oversized rentals).</summary>
    public long RentedBytes => Interlocked.Read(ref _rentedBytes);

    /// <summary>Bytes held in slabs (grows, never shrinks).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (minBufferSize > BlockSize)
            return new Oversized(this, minBufferSize);
        if (!_free.TryDequeue(out Block? block))
            block = AllocateSlab();
        block.Rented = true;
        Interlocked.Add(ref _rentedBytes, BlockSize);
        return block;
    }

    private Block AllocateSlab()
    {
        byte[] slab = GC.AllocateUninitializedArray<byte>(BlockSize * BlocksPerSlab, pinned: true);
        Interlocked.Add(ref _allocatedBytes, slab.Length);
        for (int i = 1; i < BlocksPerSlab; i++)
            _free.Enqueue(new Block(this, slab, i * BlockSize));
        return new Block(this, slab, 0);
    }

    private void Return(Block block)
    {
        Interlocked.Add(ref _rentedBytes, -BlockSize);
        if (block.Retired) s_retired.Add(block);
        else if (_disposed == 0) _free.Enqueue(block);
    }

    /// <summary>
    /// Takes the blocks behind <paramref name="memory"/> out of circulation: when their owner
    /// returns them, they are kept aside for the life of the process instead of being rented again.
    /// For memory the kernel may still read.
    /// </summary>
    public void Retire(in ReadOnlySequence<byte> memory)
    {
        foreach (ReadOnlyMemory<byte> segment in memory)
        {
            if (MemoryMarshal.TryGetMemoryManager(segment, out Block? block)) block.Retired = true;
            else if (MemoryMarshal.TryGetMemoryManager(segment, out Oversized? oversized)) oversized.Retired = true;
        }
    }

    protected override void Dispose(bool disposing) => Interlocked.Exchange(ref _disposed, 1);

    /// <summary>A block: a pinned slice of a slab. Pinning is free: the slab never moves.</summary>
    private sealed unsafe class Block : MemoryManager<byte>
    {
        private readonly PinnedBlockMemoryPool _pool;
        private readonly byte[] _slab;
        private readonly int _offset;

        public Block(PinnedBlockMemoryPool pool, byte[] slab, int offset)
        {
            _pool = pool;
            _slab = slab;
            _offset = offset;
        }

        public bool Rented;

        public bool Retired;

        public override Memory<byte> Memory => CreateMemory(BlockSize);

        public override Span<byte> GetSpan() => new(_slab, _offset, BlockSize);

        public override MemoryHandle Pin(int elementIndex = 0) =>
            new(Unsafe.AsPointer(ref _slab[_offset + elementIndex]), default, this);

        public override void Unpin() { }

        protected override bool TryGetArray(out ArraySegment<byte> segment)
        {
            segment = new ArraySegment<byte>(_slab, _offset, BlockSize);
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            // Kestrel disposes each rented block exactly once; guard against double returns anyway.
            if (!Rented) return;
            Rented = false;
            _pool.Return(this);
        }
    }

    private sealed unsafe class Oversized : MemoryManager<byte>
    {
        private readonly PinnedBlockMemoryPool _pool;
        private byte[]? _array;

        public bool Retired;

        public Oversized(PinnedBlockMemoryPool pool, int size)
        {
            _pool = pool;
            _array = GC.AllocateUninitializedArray<byte>(size, pinned: true);
            Interlocked.Add(ref pool._rentedBytes, size);
        }

        public override Span<byte> GetSpan() => _array ?? throw new ObjectDisposedException(nameof(Oversized));

        public override MemoryHandle Pin(int elementIndex = 0) =>
            new(Unsafe.AsPointer(ref GetSpan()[elementIndex]), default, this);

        public override void Unpin() { }

        protected override bool TryGetArray(out ArraySegment<byte> segment)
        {
            segment = new ArraySegment<byte>(_array ?? throw new ObjectDisposedException(nameof(Oversized)));
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            byte[]? array = Interlocked.Exchange(ref _array, null);
            if (array is null) return;
            Interlocked.Add(ref _pool._rentedBytes, -array.Length);
            if (Retired) s_retired.Add(array);
        }
    }
}
