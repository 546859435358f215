namespace Uring.Native;

/// <summary>A ring system call failed: set-up, registration, or io_uring_enter when a full submission queue could not be flushed.</summary>
internal sealed class RingException : Exception
{
    /// <summary>Creates the exception for <paramref name="operation"/> failing with <paramref name="errno"/>.</summary>
    public RingException(string operation, int errno)
        : base($"{operation} failed: {Uring.Native.Errno.Describe(errno)}")
    {
        Errno = Uring.Native.Errno.Magnitude(errno);
    }

    /// <summary>Creates the exception with a complete <paramref name="message"/> that already names the errno.</summary>
    internal RingException(int errno, string message)
        : base(message)
    {
        Errno = Uring.Native.Errno.Magnitude(errno);
    }

    /// <summary>The positive errno.</summary>
    public int Errno { get; }
}
