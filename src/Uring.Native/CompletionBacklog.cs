using System.Numerics;

namespace Uring.Native;

/// <summary>
/// Completions waiting to be drained, in arrival order: a power-of-two circular buffer that doubles
/// when full, so nothing is ever dropped (as the kernel's CQ with IORING_FEAT_NODROP). The epoll
/// engine's whole CQ; the io_uring engine's overflow, for CQEs moved out of a full CQ.
/// </summary>
internal sealed class CompletionBacklog
{
    private Completion[] _items;
    private int _head;
    private int _count;

    internal CompletionBacklog(int capacity) =>
        _items = new Completion[BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, 16))];

    internal int Count => _count;

    internal void Add(ulong userData, int result, uint flags) => Add(new Completion(userData, result, flags));

    internal void Add(in Completion completion)
    {
        if (_count == _items.Length) Grow();
        _items[(_head + _count) & (_items.Length - 1)] = completion;
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
