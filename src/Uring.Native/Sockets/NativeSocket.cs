using System.Net;
using Uring.Native.Interop;

namespace Uring.Native;

/// <summary>
/// Thin socket calls over raw file descriptors, used at the edges (listen, connect set-up, options).
/// Throwing variants are for set-up and throw <see cref="System.Net.Sockets.SocketException"/>
/// (the errno mapped as .NET maps it); the data path goes through a ring.
/// </summary>
internal static unsafe class NativeSocket
{
    /// <summary>Creates a non-blocking, close-on-exec stream socket for <paramref name="family"/>.</summary>
    public static int CreateStream(int family)
    {
        int fd = Libc.socket(family, Linux.SOCK_STREAM | Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC, 0);
        if (fd < 0) throw Errno.SocketFailure("socket", Libc.Errno);
        return fd;
    }

    /// <summary>
    /// Creates a listening socket bound to <paramref name="endPoint"/>. With <paramref name="reusePort"/>
    /// several sockets may bind the same port and the kernel spreads connections among them.
    /// </summary>
    public static int Listen(EndPoint endPoint, int backlog, bool reusePort) =>
        Owned(CreateBound(endPoint, reusePort), fd => Listen(fd, backlog));

    /// <summary>
    /// A stream socket bound to <paramref name="endPoint"/>, not yet listening (TCP: SO_REUSEADDR,
    /// dual-stack for [::], SO_REUSEPORT when asked).
    /// </summary>
    /// <exception cref="System.Net.Sockets.SocketException">socket, setsockopt or bind failed (AddressAlreadyInUse when the address is taken).</exception>
    public static int CreateBound(EndPoint endPoint, bool reusePort) => Owned(CreateStream(SockAddr.FamilyOf(endPoint)), fd =>
    {
        if (endPoint is IPEndPoint ip)
        {
            SetOption(fd, Linux.SOL_SOCKET, Linux.SO_REUSEADDR, 1);
            if (reusePort) SetOption(fd, Linux.SOL_SOCKET, Linux.SO_REUSEPORT, 1);
            if (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && ip.Address.Equals(IPAddress.IPv6Any))
                SetOption(fd, Linux.IPPROTO_IPV6, Linux.IPV6_V6ONLY, 0); // dual-stack, as Kestrel does for [::]
        }
        Bind(fd, endPoint);
    });

    // Sets up a new fd; when that throws, the fd is closed (nothing else owns it yet).
    private static int Owned(int fd, Action<int> setUp)
    {
        try
        {
            setUp(fd);
            return fd;
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    /// <summary>listen(2).</summary>
    /// <exception cref="System.Net.Sockets.SocketException">listen failed.</exception>
    public static void Listen(int fd, int backlog)
    {
        if (Libc.listen(fd, backlog) < 0) throw Errno.SocketFailure("listen", Libc.Errno);
    }

    /// <summary>
    /// Attaches a classic BPF program to <paramref name="fd"/>'s SO_REUSEPORT group that picks
    /// among its first <paramref name="groupSize"/> sockets (in the order they started listening).
    /// Socket i is picked for a connection received on CPU <paramref name="socketCpus"/>[i], when
    /// given; any other connection by the packet's flow hash (a random pick when there is none).
    /// A socket that joins the group later sits at a higher index and is never picked. Returns 0 or
    /// a negative errno.
    /// </summary>
    public static int AttachReusePortSteering(int fd, int groupSize, ReadOnlySpan<int> socketCpus = default)
    {
        const uint SKF_AD_OFF = 0xFFFFF000, SKF_AD_RXHASH = 32, SKF_AD_CPU = 36, SKF_AD_RANDOM = 56;
        const ushort LD_W_ABS = 0x20, JEQ_K = 0x15, MOD_K = 0x94, RET_K = 0x06, RET_A = 0x16;
        if (socketCpus.Length > groupSize) throw new ArgumentException("More CPUs than sockets.", nameof(socketCpus));
        var program = new SockFilter[(socketCpus.IsEmpty ? 0 : 1 + 2 * socketCpus.Length) + 5];
        int length = 0;
        if (!socketCpus.IsEmpty)
        {
            program[length++] = new SockFilter(LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_CPU);
            for (int i = 0; i < socketCpus.Length; i++)
            {
                program[length++] = new SockFilter(JEQ_K, 0, 1, (uint)socketCpus[i]);
                program[length++] = new SockFilter(RET_K, 0, 0, (uint)i);
            }
        }
        program[length++] = new SockFilter(LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_RXHASH);
        program[length++] = new SockFilter(JEQ_K, 0, 1, 0);
        program[length++] = new SockFilter(LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_RANDOM);
        program[length++] = new SockFilter(MOD_K, 0, 0, (uint)groupSize);
        program[length++] = new SockFilter(RET_A, 0, 0, 0);
        fixed (SockFilter* filter = program)
        {
            SockFprog fprog = new() { Length = checked((ushort)length), Filter = filter };
            return Libc.setsockopt(fd, Linux.SOL_SOCKET, Linux.SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(SockFprog)) < 0 ? -Libc.Errno : 0;
        }
    }

    private readonly struct SockFilter(ushort code, byte jt, byte jf, uint k)
    {
        public readonly ushort Code = code;
        public readonly byte Jt = jt;
        public readonly byte Jf = jf;
        public readonly uint K = k;
    }

    private struct SockFprog
    {
        public ushort Length;
        public SockFilter* Filter;
    }

    /// <summary>Binds <paramref name="fd"/> to <paramref name="endPoint"/>.</summary>
    public static void Bind(int fd, EndPoint endPoint)
    {
        byte* addr = stackalloc byte[SockAddr.MaxSize];
        int len = SockAddr.Write(endPoint, new Span<byte>(addr, SockAddr.MaxSize));
        if (Libc.bind(fd, addr, len) < 0)
        {
            int errno = Libc.Errno;
            throw Errno.SocketFailure($"bind to {endPoint}", errno);
        }
    }

    /// <summary>Sets an integer socket option; returns 0 or a negative errno.</summary>
    public static int TrySetOption(int fd, int level, int name, int value) =>
        Libc.setsockopt(fd, level, name, &value, sizeof(int)) < 0 ? -Libc.Errno : 0;

    /// <summary>Sets an integer socket option or throws.</summary>
    public static void SetOption(int fd, int level, int name, int value)
    {
        int r = TrySetOption(fd, level, name, value);
        if (r < 0) throw Errno.SocketFailure($"setsockopt({level},{name})", r);
    }

    /// <summary>Reads an integer socket option; returns the value, or a negative errno.</summary>
    public static int GetOption(int fd, int level, int name)
    {
        int value = 0, len = sizeof(int);
        return Libc.getsockopt(fd, level, name, &value, &len) < 0 ? -Libc.Errno : value;
    }

    /// <summary>Sets SO_LINGER {on, 0} so that close sends RST instead of FIN.</summary>
    public static int SetLingerZero(int fd)
    {
        int* linger = stackalloc int[2] { 1, 0 };
        return Libc.setsockopt(fd, Linux.SOL_SOCKET, Linux.SO_LINGER, linger, 8) < 0 ? -Libc.Errno : 0;
    }

    /// <summary>The local address of a socket, or null.</summary>
    public static EndPoint? GetLocalEndPoint(int fd)
    {
        byte* addr = stackalloc byte[SockAddr.MaxSize];
        uint len = SockAddr.MaxSize;
        return Libc.getsockname(fd, addr, &len) < 0 ? null : SockAddr.Read(new ReadOnlySpan<byte>(addr, (int)len));
    }

    /// <summary>The peer address of a socket, or null.</summary>
    public static EndPoint? GetRemoteEndPoint(int fd)
    {
        byte* addr = stackalloc byte[SockAddr.MaxSize];
        uint len = SockAddr.MaxSize;
        return Libc.getpeername(fd, addr, &len) < 0 ? null : SockAddr.Read(new ReadOnlySpan<byte>(addr, (int)len));
    }

    /// <summary>shutdown(2); returns 0 or a negative errno.</summary>
    public static int Shutdown(int fd, int how) => Libc.shutdown(fd, how) < 0 ? -Libc.Errno : 0;

    /// <summary>close(2); returns 0 or a negative errno.</summary>
    public static int Close(int fd) => Libc.close(fd) < 0 ? -Libc.Errno : 0;

    /// <summary>Sets or clears O_NONBLOCK; returns 0 or a negative errno.</summary>
    public static int SetNonBlocking(int fd, bool nonBlocking)
    {
        int flags = Libc.fcntl(fd, Linux.F_GETFL, 0);
        if (flags < 0) return -Libc.Errno;
        int wanted = nonBlocking ? flags | Linux.O_NONBLOCK : flags & ~Linux.O_NONBLOCK;
        if (wanted == flags) return 0;
        return Libc.fcntl(fd, Linux.F_SETFL, wanted) < 0 ? -Libc.Errno : 0;
    }
}
