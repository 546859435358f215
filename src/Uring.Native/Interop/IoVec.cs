using System.Runtime.InteropServices;

namespace Uring.Native;

/// <summary><c>struct iovec</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    /// <summary>Start of the buffer.</summary>
    public void* Base;

    /// <summary>Length in bytes.</summary>
    public nuint Length;
}

/// <summary><c>struct msghdr</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    /// <summary>Optional address (unconnected sockets).</summary>
    public void* Name;

    /// <summary>Length of <see cref="Name"/>.</summary>
    public uint NameLength;

    /// <summary>Scatter/gather array.</summary>
    public IoVec* Iov;

    /// <summary>Number of entries in <see cref="Iov"/>.</summary>
    public nuint IovLength;

    /// <summary>Ancillary data.</summary>
    public void* Control;

    /// <summary>Length of <see cref="Control"/>.</summary>
    public nuint ControlLength;

    /// <summary>Flags on received message.</summary>
    public int Flags;
}
