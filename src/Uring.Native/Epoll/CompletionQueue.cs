using System.Numerics;

namespace Uring.Native.Epoll;

/// <summary>
/// The emulated CQ: a power-of-two circular buffer that doubles when full. The kernel's CQ never
/// drops either (IORING_FEAT_NODROP); growing is the emulation's overflow list.
/// </summary>
internal sealed class CompletionQueue
{
    private Completion[] _items;
    private int _head;
    private int _count;

    internal CompletionQueue(int capacity) =>
        _items = new Completion[BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, 16))];

    internal int Count => _count;

    internal void Add(ulong userData, int result, uint flags)
    {
        if (_count == _items.Length) Grow();
        _items[(_head + _count) & (_items.Length - 1)] = new Completion(userData, result, flags);
        _count++;
    }

    internal int Drain(Span<Completion> destination)
    {
        int n = Math.Min(destination.Length, _count);
        int first = Math.Min(n, _items.Length - _head);
        _items.AsSpan(_head, first).CopyTo(destination);
        _items.AsSpan(0, n - first).CopyTo(destination.Slice(first));
        _head = (_head + n) & (_items.Length - 1);
        _count -= n;
        return n;
    }

    private void Grow()
    {
        var bigger = new Completion[_items.Length * 2];
        int first = _items.Length - _head;
        _items.AsSpan(_head, first).CopyTo(bigger);
        _items.AsSpan(0, _head).CopyTo(bigger.AsSpan(first));
        _items = bigger;
        _head = 0;
    }
}
