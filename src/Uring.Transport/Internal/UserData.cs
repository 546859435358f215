namespace Uring.Transport.Internal;

/// <summary>What an in-flight operation was for; the low byte of its user_data.</summary>
internal enum OpKind : byte
{
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 5,
    Close = 6,
    Connect = 7,
    SendZc = 8, // a zero-copy send; its tag says which of the connection's in-flight ones
}

/// <summary>
/// user_data layout: generation (32 bits) | slot (24 bits) | tag (4 bits) | op kind (4 bits). A completion whose
/// generation no longer matches its slot belongs to a previous owner and is ignored (after
/// returning any provided buffer it carries), so a raw fd is never needed to route completions.
/// </summary>
internal static class UserData
{
    public const int MaxSlots = 1 << 24;

    public static ulong Encode(OpKind kind, int slot, uint generation, int tag = 0) =>
        ((ulong)generation << 32) | ((ulong)(uint)slot << 8) | (uint)((tag & 0xF) << 4) | (byte)kind;

    public static OpKind Kind(ulong userData) => (OpKind)(userData & 0xF);

    /// <summary>A handler's own number for one of several operations of a kind in flight (0-15).</summary>
    public static int Tag(ulong userData) => (int)((userData >> 4) & 0xF);

    public static int Slot(ulong userData) => (int)((userData >> 8) & 0xFFFFFF);

    public static uint Generation(ulong userData) => (uint)(userData >> 32);
}

/// <summary>Something a loop routes completions to: a connection, an acceptor.</summary>
internal interface ICompletionHandler
{
    /// <summary>Handles one completion, on the loop thread.</summary>
    void OnCompletion(OpKind kind, in Uring.Native.Completion completion);

    /// <summary>A handler call threw: end this handler's work (the loop goes on).</summary>
    void OnHandlerFault(Exception error);

    /// <summary>The loop is stopping: cancel or abort what is in flight; completions still arrive.</summary>
    void OnLoopStopping();

    /// <summary>True while the kernel holds an operation of this handler (its final completion has not come).</summary>
    bool InKernel { get; }

    /// <summary>
    /// The loop is exiting with this handler still registered: no completion will come. Close the
    /// fd synchronously (unless a close is already in the kernel), keep memory the kernel might
    /// still touch allocated, and complete every waiter, failing it with <paramref name="reason"/>.
    /// </summary>
    void OnLoopStopped(string reason);
}
