using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// A connection's socket fd, and who may close it. Owned here from accept (or connect) until the
/// connection's <see cref="CloseOperation"/> takes it (<see cref="HandOver"/>); meanwhile the
/// connection's operations name it by number (the kernel holds the file, not the number, while one
/// is in flight). Closed exactly once: by that close, or synchronously by <see cref="CloseNow"/>
/// when the loop exits first.
/// </summary>
internal sealed class ConnectionSocket(int fd)
{
    private int _fd = fd; // -1 once handed over or closed

    /// <summary>The fd, while this owns it (-1 after).</summary>
    public int Fd => _fd;

    /// <summary>Close sends RST instead of FIN (SO_LINGER {1, 0}): an abort.</summary>
    public void ResetOnClose()
    {
        if (_fd >= 0) NativeSocket.SetLingerZero(_fd);
    }

    /// <summary>The close operation owns the fd from now on.</summary>
    public void HandOver() => _fd = -1;

    /// <summary>Closes the fd now if this still owns it (<paramref name="reset"/>: with RST).</summary>
    public void CloseNow(bool reset)
    {
        if (_fd < 0) return;
        if (reset) NativeSocket.SetLingerZero(_fd);
        NativeSocket.Close(_fd);
        _fd = -1;
    }
}
