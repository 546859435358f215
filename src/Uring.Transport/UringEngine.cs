namespace Uring.Transport;

/// <summary>Which engine drives the transport's I/O loops.</summary>
public enum UringEngine
{
    /// <summary>io_uring when the kernel offers everything needed, otherwise epoll (the choice and its reason are logged once). The default.</summary>
    Auto = 0,

    /// <summary>The kernel's io_uring.</summary>
    IoUring = 1,

    /// <summary>Edge-triggered epoll with the same completion model: older kernels, sandboxes that block io_uring.</summary>
    Epoll = 2,
}
