using System.Runtime.InteropServices;

namespace Uring.Native.Interop;

/// <summary>libc entry points. Each returns -1 and sets errno on failure (read it with <see cref="Marshal.GetLastPInvokeError"/>).</summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    // x86_64 and aarch64 syscall numbers for io_uring (identical on both: they came after the unified table).
    internal const long SYS_io_uring_setup = 425;
    internal const long SYS_io_uring_enter = 426;
    internal const long SYS_io_uring_register = 427;

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    internal static partial long syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int munmap(void* addr, nuint length);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int eventfd(uint initval, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int close(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint read(int fd, void* buf, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint write(int fd, void* buf, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int socket(int domain, int type, int protocol);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int socketpair(int domain, int type, int protocol, int* fds);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int bind(int fd, byte* addr, int addrLen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int listen(int fd, int backlog);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int connect(int fd, byte* addr, int addrLen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int accept4(int fd, byte* addr, uint* addrLen, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int setsockopt(int fd, int level, int name, void* value, int valueLen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int getsockopt(int fd, int level, int name, void* value, int* valueLen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int getsockname(int fd, byte* addr, uint* addrLen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int getpeername(int fd, byte* addr, uint* addrLen);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int shutdown(int fd, int how);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint recv(int fd, void* buf, nuint len, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint send(int fd, void* buf, nuint len, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint sendmsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial nint pread(int fd, void* buf, nuint count, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int poll(PollFd* fds, nuint nfds, int timeout);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_create1(int flags);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_ctl(int epfd, int op, int fd, EpollEvent* ev);

    [LibraryImport(Lib, SetLastError = true)]
    internal static partial int epoll_wait(int epfd, EpollEvent* events, int maxEvents, int timeout);

    internal static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>Kernel-style result: the value, or -errno when the call failed.</summary>
    internal static int Result(long ret) => ret < 0 ? -Errno : (int)ret;
}

[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int Fd;
    public short Events;
    public short REvents;
}

// struct epoll_event is packed on x86 (12 bytes) and naturally aligned (16 bytes) elsewhere, so
// the data field's offset and the array stride are chosen at run time.
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal unsafe struct EpollEvent
{
    private static readonly bool s_packed =
        RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86;

    [FieldOffset(0)] public uint Events;
    [FieldOffset(4)] private ulong _dataPacked;
    [FieldOffset(8)] private ulong _dataAligned;

    /// <summary>Bytes between array elements as the kernel lays them out.</summary>
    public static int Stride => s_packed ? 12 : 16;

    public ulong Data
    {
        readonly get => s_packed ? _dataPacked : _dataAligned;
        set
        {
            if (s_packed) _dataPacked = value;
            else _dataAligned = value;
        }
    }

    /// <summary>Element <paramref name="index"/> of an array the kernel filled.</summary>
    public static EpollEvent* At(EpollEvent* array, int index) => (EpollEvent*)((byte*)array + (nint)index * Stride);
}
