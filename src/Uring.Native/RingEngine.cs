namespace Uring.Native;

/// <summary>Which kernel interface drives a ring.</summary>
public enum RingEngine
{
    /// <summary>io_uring when the kernel offers everything needed, otherwise epoll.</summary>
    Auto = 0,

    /// <summary>The kernel's io_uring.</summary>
    IoUring = 1,

    /// <summary>Edge-triggered epoll, emulating io_uring's completions.</summary>
    Epoll = 2,
}
