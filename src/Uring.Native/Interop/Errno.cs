namespace Uring.Native;

/// <summary>errno values (Linux generic) and their names, for messages.</summary>
internal static class Errno
{
#pragma warning disable CS1591 // names are the kernel's
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int EINVAL = 22;
    public const int ENFILE = 23;
    public const int EMFILE = 24;
    public const int ENOSPC = 28;
    public const int EPIPE = 32;
    public const int ERANGE = 34;
    public const int ENOSYS = 38;
    public const int ENOTSOCK = 88;
    public const int EOPNOTSUPP = 95;
    public const int EADDRINUSE = 98;
    public const int EADDRNOTAVAIL = 99;
    public const int ENETDOWN = 100;
    public const int ENETUNREACH = 101;
    public const int ECONNABORTED = 103;
    public const int ECONNRESET = 104;
    public const int ENOBUFS = 105;
    public const int EISCONN = 106;
    public const int ENOTCONN = 107;
    public const int ETIMEDOUT = 110;
    public const int ECONNREFUSED = 111;
    public const int EHOSTUNREACH = 113;
    public const int EALREADY = 114;
    public const int EINPROGRESS = 115;
    public const int ECANCELED = 125;
    public const int ETIME = 62;
    public const int EBADR = 53;
#pragma warning restore CS1591

    // int.MinValue has no positive counterpart; no errno is that large anyway.
    internal static int Magnitude(int errno) => errno == int.MinValue ? int.MaxValue : Math.Abs(errno);

    /// <summary>The symbolic name of an errno (sign ignored), e.g. "EPERM".</summary>
    public static string Name(int errno) => Magnitude(errno) switch
    {
        EPERM => "EPERM", ENOENT => "ENOENT", EINTR => "EINTR", EIO => "EIO", EBADF => "EBADF",
        EAGAIN => "EAGAIN", ENOMEM => "ENOMEM", EACCES => "EACCES", EFAULT => "EFAULT",
        EBUSY => "EBUSY", EEXIST => "EEXIST", EINVAL => "EINVAL", ENFILE => "ENFILE",
        EMFILE => "EMFILE", ENOSPC => "ENOSPC", EPIPE => "EPIPE", ERANGE => "ERANGE", ETIME => "ETIME", EBADR => "EBADR",
        ENOSYS => "ENOSYS", ENOTSOCK => "ENOTSOCK", EOPNOTSUPP => "EOPNOTSUPP",
        EADDRINUSE => "EADDRINUSE", EADDRNOTAVAIL => "EADDRNOTAVAIL", ENETDOWN => "ENETDOWN",
        ENETUNREACH => "ENETUNREACH", ECONNABORTED => "ECONNABORTED", ECONNRESET => "ECONNRESET",
        ENOBUFS => "ENOBUFS", EISCONN => "EISCONN", ENOTCONN => "ENOTCONN", ETIMEDOUT => "ETIMEDOUT",
        ECONNREFUSED => "ECONNREFUSED", EHOSTUNREACH => "EHOSTUNREACH", EALREADY => "EALREADY",
        EINPROGRESS => "EINPROGRESS", ECANCELED => "ECANCELED",
        var other => "errno " + other,
    };

    /// <summary>The <see cref="System.Net.Sockets.SocketError"/> .NET reports for an errno (sign ignored).</summary>
    public static System.Net.Sockets.SocketError ToSocketError(int errno) => Magnitude(errno) switch
    {
        0 => System.Net.Sockets.SocketError.Success,
        ECONNRESET => System.Net.Sockets.SocketError.ConnectionReset,
        EPIPE => System.Net.Sockets.SocketError.Shutdown,
        ECONNREFUSED => System.Net.Sockets.SocketError.ConnectionRefused,
        ECONNABORTED => System.Net.Sockets.SocketError.ConnectionAborted,
        ETIMEDOUT => System.Net.Sockets.SocketError.TimedOut,
        ENETUNREACH => System.Net.Sockets.SocketError.NetworkUnreachable,
        EHOSTUNREACH => System.Net.Sockets.SocketError.HostUnreachable,
        ENETDOWN => System.Net.Sockets.SocketError.NetworkDown,
        EADDRINUSE => System.Net.Sockets.SocketError.AddressAlreadyInUse,
        EADDRNOTAVAIL => System.Net.Sockets.SocketError.AddressNotAvailable,
        ENOENT => System.Net.Sockets.SocketError.AddressNotAvailable, // as .NET: connecting to a Unix socket path that does not exist
        ECANCELED => System.Net.Sockets.SocketError.OperationAborted,
        ENOTCONN => System.Net.Sockets.SocketError.NotConnected,
        EACCES or EPERM => System.Net.Sockets.SocketError.AccessDenied,
        ENOBUFS or ENOMEM => System.Net.Sockets.SocketError.NoBufferSpaceAvailable,
        EMFILE or ENFILE => System.Net.Sockets.SocketError.TooManyOpenSockets,
        EINVAL => System.Net.Sockets.SocketError.InvalidArgument,
        EINPROGRESS => System.Net.Sockets.SocketError.InProgress,
        EALREADY => System.Net.Sockets.SocketError.AlreadyInProgress,
        EISCONN => System.Net.Sockets.SocketError.IsConnected,
        _ => System.Net.Sockets.SocketError.SocketError,
    };

    /// <summary>A socket call's failure, as .NET reports one: the SocketError of the errno, a message naming the call and the errno.</summary>
    public static System.Net.Sockets.SocketException SocketFailure(string call, int errno) =>
        new((int)ToSocketError(errno), $"{call} failed: {Describe(errno)}");

    /// <summary>"EPERM (1)"-style text for an errno.</summary>
    public static string Describe(int errno) => $"{Name(errno)} ({Magnitude(errno)})";
}
