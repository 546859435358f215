using Uring.Native;

namespace Uring.Transport;

/// <summary>
/// Present on every connection served by this transport (also through <c>HttpContext.Features</c>):
/// which engine and which I/O loop serve it.
/// </summary>
public interface IUringConnectionFeature
{
    /// <summary>The ring kind serving the connection: <see cref="RingEngine.IoUring"/> or <see cref="RingEngine.Epoll"/>.</summary>
    RingEngine Engine { get; }

    /// <summary>Index of the I/O loop (0 to RingCount-1) that owns the connection.</summary>
    int LoopIndex { get; }
}
