using System.Runtime.InteropServices;

namespace Uring.Native.Interop;

/// <summary>
/// The eventfd a ring's <c>Wake</c> writes. A <see cref="SafeHandle"/>, so the fd is closed only
/// once no thread is inside <see cref="TrySignal"/>: any thread may wake a loop, also one that is
/// shutting down, and a number closed under a late writer would be reused at once by the next
/// accept (8 bytes written into someone's connection). After <see cref="SafeHandle.Dispose()"/>,
/// <see cref="TrySignal"/> does nothing.
/// </summary>
internal sealed unsafe class EventFdHandle : SafeHandle
{
    private EventFdHandle(int fd)
        : base(invalidHandleValue: -1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    /// <summary>The fd number; valid while the handle is not disposed (the owning ring's thread only).</summary>
    public int Fd => (int)handle;

    /// <summary>Creates an eventfd with <paramref name="flags"/> (EFD_*).</summary>
    /// <exception cref="RingException">eventfd failed.</exception>
    public static EventFdHandle Create(int flags)
    {
        int fd = Libc.eventfd(0, flags);
        if (fd < 0) throw new RingException("eventfd", Libc.Errno);
        return new EventFdHandle(fd);
    }

    /// <summary>Adds 1 to the counter; false when the handle is already disposed.</summary>
    public bool TrySignal()
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            ulong one = 1;
            // EAGAIN only when the counter is near overflow: a wake is pending anyway.
            Libc.write((int)handle, &one, sizeof(ulong));
            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            if (added) DangerousRelease();
        }
    }

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}
