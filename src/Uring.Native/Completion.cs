using System.Runtime.InteropServices;

namespace Uring.Native;

/// <summary>One completion, laid out like the kernel's <c>struct io_uring_cqe</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct Completion
{
    /// <summary>The user_data given when the operation was prepared.</summary>
    public readonly ulong UserData;

    /// <summary>The operation's result: &gt;= 0 on success, a negative errno on failure.</summary>
    public readonly int Result;

    /// <summary>IORING_CQE_F_* flags; the upper 16 bits hold the buffer id when <see cref="CompletionFlags.Buffer"/> is set.</summary>
    public readonly uint Flags;

    /// <summary>Creates a completion.</summary>
    public Completion(ulong userData, int result, uint flags)
    {
        UserData = userData;
        Result = result;
        Flags = flags;
    }

    /// <summary>True when more completions will follow for the same operation (multishot).</summary>
    public bool HasMore => (Flags & CompletionFlags.More) != 0;

    /// <summary>True when the completion carries a provided buffer.</summary>
    public bool HasBuffer => (Flags & CompletionFlags.Buffer) != 0;

    /// <summary>The provided buffer's id (valid when <see cref="HasBuffer"/>).</summary>
    public ushort BufferId => (ushort)(Flags >> CompletionFlags.BufferShift);

    /// <inheritdoc />
    public override string ToString() => $"user_data=0x{UserData:x} res={Result} flags=0x{Flags:x}";
}

/// <summary>The kernel's IORING_CQE_F_* flags.</summary>
internal static class CompletionFlags
{
    /// <summary>IORING_CQE_F_BUFFER: a provided buffer was used; its id is in the upper 16 bits.</summary>
    public const uint Buffer = 1u << 0;

    /// <summary>IORING_CQE_F_MORE: the operation stays armed; more completions follow.</summary>
    public const uint More = 1u << 1;

    /// <summary>IORING_CQE_F_SOCK_NONEMPTY: the socket had more data after this receive.</summary>
    public const uint SockNonEmpty = 1u << 2;

    /// <summary>IORING_CQE_F_NOTIF: zero-copy send notification, the buffer may be reused.</summary>
    public const uint Notification = 1u << 3;

    /// <summary>IORING_NOTIF_USAGE_ZC_COPIED, in the result of a zero-copy notification: the kernel copied the data.</summary>
    public const uint ZeroCopyCopied = 1u << 31;

    /// <summary>IORING_CQE_BUFFER_SHIFT.</summary>
    public const int BufferShift = 16;
}
