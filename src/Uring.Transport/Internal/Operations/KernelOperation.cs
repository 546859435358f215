using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// One operation the kernel holds, and the one owner of everything it may touch (pins, iovecs,
/// msghdr, sockaddr, pipe memory, a provided buffer named by its completion) from its prepare to
/// its final completion (for a zero-copy send, its notification). Only it gives that memory back.
/// </summary>
/// <remarks>
/// Lifetime: idle (in its loop's pool) → <see cref="Submit"/>: registered in the loop's
/// <see cref="OperationTable"/> (its slot and generation are its user_data) and prepared, whole or
/// not at all: a prepare that throws leaves it unregistered, and the caller releases what it took →
/// in the kernel until <see cref="Complete"/> sees its final completion, where it unregisters
/// (<see cref="Finished"/>) and goes back to its pool. If the loop exits while it is in the kernel,
/// <see cref="Abandon"/> retires what the kernel may still touch: kept for good, never freed or reused.
/// Loop thread only.
/// </remarks>
internal abstract class KernelOperation
{
    protected KernelOperation(IoLoop loop, OpKind kind)
    {
        Loop = loop;
        Kind = kind;
    }

    public IoLoop Loop { get; }

    public OpKind Kind { get; protected set; }

    /// <summary>Its slot in the loop's table while in the kernel, else -1 (set by the table).</summary>
    internal int Slot { get; set; } = -1;

    internal uint Generation { get; set; }

    public ulong UserData => Internal.UserData.Encode(Kind, Slot, Generation);

    /// <summary>True from a successful submit to the final completion.</summary>
    public bool InKernel => Slot >= 0;

    /// <summary>Whose work this is: told of its completions, and faulted when handling one throws.</summary>
    public abstract ILoopMember? Owner { get; }

    /// <summary>Writes the operation's SQE(s) with <see cref="UserData"/>; may throw (see <see cref="IRing"/>).</summary>
    protected abstract void Prepare(IRing ring);

    /// <summary>One completion of this operation.</summary>
    public abstract void Complete(in Completion completion);

    /// <summary>The loop is exiting with this operation in the kernel: no completion will come.</summary>
    public abstract void Abandon();

    /// <summary>Registers and prepares the operation; false (nothing registered, the failure logged and its owner faulted) when the prepare threw.</summary>
    protected bool Submit() => Loop.Operations.Submit(this);

    internal void PrepareFor(IRing ring) => Prepare(ring);

    /// <summary>The final completion came: the slot is free again.</summary>
    protected void Finished() => Loop.Operations.Remove(this);
}
