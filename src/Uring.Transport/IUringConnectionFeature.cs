namespace Uring.Transport;

/// <summary>
/// Present on every connection served by this transport (also through <c>HttpContext.Features</c>):
/// which engine and which I/O loop serve it.
/// </summary>
public interface IUringConnectionFeature
{
    /// <summary>The engine serving the connection: <see cref="UringEngine.IoUring"/> or <see cref="UringEngine.Epoll"/>.</summary>
    UringEngine Engine { get; }

    /// <summary>Index of the I/O loop (0 to RingCount-1) that owns the connection.</summary>
    int LoopIndex { get; }
}
