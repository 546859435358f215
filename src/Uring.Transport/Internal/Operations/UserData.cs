namespace Uring.Transport.Internal;

/// <summary>What an in-flight operation is; the low byte of its user_data (for traces and tests: routing uses the slot).</summary>
internal enum OpKind : byte
{
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 5,
    Close = 6,
    Connect = 7,
    SendZc = 8,
}

/// <summary>
/// user_data layout: generation (32 bits) | slot (24 bits) | op kind (8 bits). The slot is the
/// operation's in its loop's <see cref="OperationTable"/>; a completion whose generation no longer
/// matches its slot belongs to an earlier operation and is ignored (after returning any provided
/// buffer it carries), so a raw fd is never needed to route completions.
/// </summary>
internal static class UserData
{
    public const int MaxSlots = 1 << 24;

    /// <summary>
    /// The user_data of what no operation owns: cancels (they touch no memory and name their target
    /// by user_data; the target reports for itself) and the loop's cancel-everything. Its slot is never handed out.
    /// </summary>
    public static readonly ulong Unowned = Encode(OpKind.Cancel, MaxSlots - 1, 0);

    public static ulong Encode(OpKind kind, int slot, uint generation) =>
        ((ulong)generation << 32) | ((ulong)(uint)slot << 8) | (byte)kind;

    public static OpKind Kind(ulong userData) => (OpKind)(byte)userData;

    public static int Slot(ulong userData) => (int)((userData >> 8) & 0xFFFFFF);

    public static uint Generation(ulong userData) => (uint)(userData >> 32);
}
