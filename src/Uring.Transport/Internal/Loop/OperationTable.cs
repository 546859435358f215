using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One loop's operations in the kernel, by slot: a completion's user_data names its slot and
/// generation, and only the operation registered there with that generation receives it. Slots
/// are reused (newest freed first); each reuse bumps the slot's generation, so a late completion
/// for an earlier operation is recognised and dropped. Loop thread only (counts are read by tests).
/// </summary>
internal sealed class OperationTable(IoLoop loop)
{
    private KernelOperation?[] _operations = new KernelOperation?[64];
    private uint[] _generations = new uint[64];
    private readonly Stack<int> _free = new();
    private int _next;

    /// <summary>Operations in the kernel now.</summary>
    public int Count { get; private set; }

    /// <summary>Idle provided-buffer receives.</summary>
    public OperationPool<ReceiveOperation> Receives { get; } = new(() => new ReceiveOperation(loop));

    /// <summary>Idle direct receives.</summary>
    public OperationPool<DirectReceiveOperation> DirectReceives { get; } = new(() => new DirectReceiveOperation(loop));

    /// <summary>Idle closes.</summary>
    public OperationPool<CloseOperation> Closes { get; } = new(() => new CloseOperation(loop));

    /// <summary>
    /// Registers <paramref name="operation"/> and has it prepare its SQE. On a throw the slot is
    /// freed again (its generation moves on) and false is returned: the failure is logged and the
    /// operation's owner faulted (after the current step), and the caller releases what it took.
    /// </summary>
    public bool Submit(KernelOperation operation)
    {
        try
        {
            Register(operation);
            operation.PrepareFor(loop.Ring);
            return true;
        }
        catch (Exception e)
        {
            Remove(operation);
            loop.Members.PrepareFailed(operation.Owner, e);
            return false;
        }
    }

    /// <summary>
    /// Asks the kernel to cancel the operation submitted with <paramref name="target"/> (by
    /// user_data, never by fd); its own final completion reports the outcome. The cancel itself is
    /// unowned. False when it could not be queued (logged, <paramref name="owner"/> faulted).
    /// </summary>
    public bool Cancel(ulong target, ILoopMember? owner)
    {
        try
        {
            loop.Ring.PrepareCancel(target, UserData.Unowned);
            return true;
        }
        catch (Exception e)
        {
            loop.Members.PrepareFailed(owner, e);
            return false;
        }
    }

    private void Register(KernelOperation operation)
    {
        if (!_free.TryPop(out int slot))
        {
            slot = _next;
            if (slot >= UserData.MaxSlots - 1) throw new InvalidOperationException("Too many operations in flight on one I/O loop.");
            if (slot == _operations.Length)
            {
                // Both grown before either is swapped in: out of memory leaves the table as it was.
                KernelOperation?[] operations = new KernelOperation?[_operations.Length * 2];
                uint[] generations = new uint[_generations.Length * 2];
                _operations.CopyTo(operations, 0);
                _generations.CopyTo(generations, 0);
                (_operations, _generations) = (operations, generations);
            }
            _next++;
        }
        _operations[slot] = operation;
        operation.Slot = slot;
        operation.Generation = ++_generations[slot];
        Count++;
    }

    /// <summary>Frees the operation's slot; completions still addressed to it are ignored from now on.</summary>
    public void Remove(KernelOperation operation)
    {
        int slot = operation.Slot;
        if (slot < 0 || _operations[slot] != operation) return;
        _operations[slot] = null;
        _generations[slot]++;
        _free.Push(slot);
        operation.Slot = -1;
        Count--;
    }

    /// <summary>
    /// Hands <paramref name="completion"/> to its operation. A late completion for an earlier one, or
    /// an unowned cancel's, is dropped, after its provided buffer (if any) goes back. If handling it
    /// throws, the operation's owner is faulted.
    /// </summary>
    public void Dispatch(in Completion completion)
    {
        if (completion.HasBuffer) loop.Buffers.Taken();
        int slot = UserData.Slot(completion.UserData);
        KernelOperation? operation = (uint)slot < (uint)_next ? _operations[slot] : null;
        if (operation is null || _generations[slot] != UserData.Generation(completion.UserData))
        {
            if (completion.HasBuffer) loop.Buffers.Recycle(completion.BufferId);
            return;
        }
        ILoopMember? owner = operation.Owner; // read first: the operation is pooled again once it has handled its final completion
        try
        {
            operation.Complete(in completion);
        }
        catch (Exception e)
        {
            loop.Members.Fault(owner, e);
        }
    }

    /// <summary>Every operation of <paramref name="kind"/> in the kernel (for the fault path's synchronous cancels).</summary>
    public List<KernelOperation> OfKind(OpKind kind)
    {
        var found = new List<KernelOperation>();
        for (int i = 0; i < _next; i++)
            if (_operations[i] is { } operation && operation.Kind == kind) found.Add(operation);
        return found;
    }

    /// <summary>The loop exits: every operation still in the kernel retires what the kernel may touch.</summary>
    public void AbandonAll()
    {
        for (int i = 0; i < _next; i++)
        {
            if (_operations[i] is not { } operation) continue;
            _operations[i] = null;
            operation.Slot = -1;
            try
            {
                operation.Abandon();
            }
            catch (Exception e)
            {
                UringLog.HandlerFailed(loop.Logger, loop.Index, e);
            }
        }
        Count = 0;
    }

    /// <summary>How many operations in the kernel match (tests: a racy snapshot off the loop thread).</summary>
    internal int CountWhere(Func<KernelOperation, bool> predicate)
    {
        KernelOperation?[] operations = _operations;
        int count = 0;
        foreach (KernelOperation? operation in operations)
            if (operation is not null && predicate(operation)) count++;
        return count;
    }
}
