using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Uring.Transport.Internal;

/// <summary>
/// Memory the kernel may read after its owner gave it back: a zero-copy send's data, until the
/// send's notification. A leased block or rental returns to the pool only when its last lease is
/// released, whatever the order of the two.
/// </summary>
internal interface IKernelLease
{
    void Lease();

    void ReleaseLease();
}

/// <summary>
/// The kernel's leases on one block or rental and its owner's return of it: whichever comes last
/// (the owner's return, or the last lease released after it) returns the memory, exactly once.
/// A mutable struct: used only as a field, in place.
/// </summary>
internal struct LeaseCount
{
    private int _leases;
    private int _returnPending; // returned by its owner while leased: the last release returns it

    public void Lease() => Interlocked.Increment(ref _leases);

    /// <summary>The owner gave the memory back: true when it is to be returned now (no lease holds it).</summary>
    public bool OwnerReturned()
    {
        Interlocked.Exchange(ref _returnPending, 1); // a full fence before reading the leases
        return Volatile.Read(ref _leases) == 0 && Interlocked.CompareExchange(ref _returnPending, 0, 1) == 1;
    }

    /// <summary>A lease ended: true when it was the last one after the owner's return (return it now).</summary>
    public bool Release() =>
        Interlocked.Decrement(ref _leases) == 0 && Interlocked.CompareExchange(ref _returnPending, 0, 1) == 1;
}

/// <summary>
/// The transport's memory pool: 4 KiB blocks carved from pinned slabs on the pinned object heap, so
/// the kernel can read and write them without the GC moving anything. Blocks are never freed, only
/// returned; rentals larger than a block get a pinned array, a few of each power-of-two size kept for reuse.
/// </summary>
internal sealed class PinnedBlockMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 4096;
    private const int BlocksPerSlab = 32; // 128 KiB slabs

    private readonly ConcurrentQueue<Block> _free = new();

    // Rentals above BlockSize: pinned arrays by power-of-two size (8 KiB to 1 MiB), a few of each kept.
    private const int LargeClasses = 8, LargeKeptPerClass = 32;
    private readonly ConcurrentQueue<byte[]>[] _large = Enumerable.Range(0, LargeClasses).Select(_ => new ConcurrentQueue<byte[]>()).ToArray();
    private long _rentedBytes;
    private long _allocatedBytes;
    private int _disposed;

    // Above BlockSize, rentals are pinned arrays (Oversized; beyond 1 MiB one-off). No maximum: a Pipe
    // rents from ArrayPool.Shared for a size hint above it, and such an array, given back by the pipe
    // while an abandoned send's kernel may still read it, would be lent out again. So every segment
    // a send points into is ours, pinned, and retirable.
    public override int MaxBufferSize => Array.MaxLength;

    /// <summary>Bytes currently rented out (blocks and oversized rentals).</summary>
    public long RentedBytes => Interlocked.Read(ref _rentedBytes);

    /// <summary>Bytes held in slabs (grows, never shrinks).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (minBufferSize > BlockSize)
            return new Oversized(this, RentLarge(minBufferSize));
        if (!_free.TryDequeue(out Block? block))
            block = AllocateSlab();
        block.Rented = true;
        Interlocked.Add(ref _rentedBytes, BlockSize);
        return block;
    }

    private byte[] RentLarge(int size)
    {
        int cls = System.Numerics.BitOperations.Log2(System.Numerics.BitOperations.RoundUpToPowerOf2((uint)size)) - 13; // 8 KiB = class 0
        if (cls >= LargeClasses) return GC.AllocateUninitializedArray<byte>(size, pinned: true); // beyond 1 MiB: one-off
        if (_large[cls].TryDequeue(out byte[]? array)) return array;
        return GC.AllocateUninitializedArray<byte>(1 << (cls + 13), pinned: true);
    }

    private void ReturnLarge(byte[] array)
    {
        if (_disposed != 0 || !System.Numerics.BitOperations.IsPow2(array.Length)) return;
        int cls = System.Numerics.BitOperations.Log2((uint)array.Length) - 13;
        if (cls is >= 0 and < LargeClasses && _large[cls].Count < LargeKeptPerClass) _large[cls].Enqueue(array);
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
        if (!block.Retired && _disposed == 0) _free.Enqueue(block); // a retired block is rooted already
    }

    /// <summary>The lease handle of a pool block or large rental, or null for memory that is not the pool's.</summary>
    public static IKernelLease? LeaseOf(ReadOnlyMemory<byte> segment) =>
        MemoryMarshal.TryGetMemoryManager(segment, out Block? block) ? block
        : MemoryMarshal.TryGetMemoryManager(segment, out Oversized? oversized) ? oversized
        : null;

    /// <summary>
    /// Takes the blocks behind <paramref name="memory"/> out of circulation: when their owner
    /// returns them, they are kept aside for the life of the process (<see cref="Internal.Retired"/>)
    /// instead of being rented again. For memory the kernel may still read or write.
    /// </summary>
    public static void Retire(in ReadOnlySequence<byte> memory)
    {
        foreach (ReadOnlyMemory<byte> segment in memory)
        {
            if (MemoryMarshal.TryGetMemoryManager(segment, out Block? block))
            {
                block.Retired = true;
                Retired.Keep(block); // rooted now: its owner may never return it
            }
            else if (MemoryMarshal.TryGetMemoryManager(segment, out Oversized? oversized))
            {
                oversized.Retired = true;
                Retired.Keep(oversized);
            }
            else if (MemoryMarshal.TryGetArray(segment, out ArraySegment<byte> array) && array.Array is { } bytes)
            {
                Retired.Keep(bytes); // not ours (a caller's own memory): at least never collected
            }
        }
    }

    protected override void Dispose(bool disposing) => Interlocked.Exchange(ref _disposed, 1);

    /// <summary>A block: a pinned slice of a slab. Pinning is free: the slab never moves.</summary>
    private sealed unsafe class Block : MemoryManager<byte>, IKernelLease
    {
        private LeaseCount _leases;

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
            if (_leases.OwnerReturned()) _pool.Return(this);
        }

        public void Lease() => _leases.Lease();

        public void ReleaseLease()
        {
            if (_leases.Release()) _pool.Return(this);
        }
    }

    private sealed unsafe class Oversized : MemoryManager<byte>, IKernelLease
    {
        private LeaseCount _leases;

        private readonly PinnedBlockMemoryPool _pool;
        private byte[]? _array;
        private byte[]? _keep; // a retired rental's array, never let go
        private int _returned;

        public bool Retired;

        public Oversized(PinnedBlockMemoryPool pool, byte[] array)
        {
            _pool = pool;
            _array = array;
            Interlocked.Add(ref pool._rentedBytes, array.Length);
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
            if (Interlocked.Exchange(ref _returned, 1) != 0) return;
            if (_leases.OwnerReturned()) GiveBack();
        }

        public void Lease() => _leases.Lease();

        public void ReleaseLease()
        {
            if (_leases.Release()) GiveBack();
        }

        private void GiveBack()
        {
            byte[]? array = Interlocked.Exchange(ref _array, null);
            if (array is null) return;
            Interlocked.Add(ref _pool._rentedBytes, -array.Length);
            if (Retired) _keep = array; // the kernel may still read it: rooted with this (retired, rooted) manager
            else _pool.ReturnLarge(array);
        }
    }
}
