namespace Uring.Transport;

/// <summary>Options for the io_uring transport. Validated when the transport starts.</summary>
public sealed class UringTransportOptions
{
    /// <summary>
    /// The configuration section <c>UseUringTransport()</c> binds these options from ("Uring": in
    /// appsettings.json <c>"Uring": { "RingCount": 4 }</c>, as an environment variable
    /// <c>Uring__RingCount=4</c>). Values set in code win over configuration.
    /// </summary>
    public const string ConfigurationSection = "Uring";

    /// <summary>
    /// Which engine drives the I/O loops. The environment variable <c>URING_TRANSPORT_ENGINE</c>
    /// (<c>iouring</c>, <c>epoll</c>, <c>auto</c>) overrides it. Default: <see cref="UringEngine.Auto"/>
    /// (io_uring when the kernel offers everything needed, otherwise epoll, logged once).
    /// </summary>
    public UringEngine Engine { get; set; } = UringEngine.Auto;

    /// <summary>Number of I/O loops (threads, each with its own ring), at least 1. Default: <see cref="Environment.ProcessorCount"/>.</summary>
    public int RingCount { get; set; } = Environment.ProcessorCount;

    /// <summary>Submission queue entries per ring (power of two, 8 to 32768; the completion queue gets 4x). Default: 512.</summary>
    public int RingEntries { get; set; } = 512;

    /// <summary>Size in bytes of each provided receive buffer (512 to 1 MiB). Default: 8192.</summary>
    public int ProvidedBufferSize { get; set; } = 8192;

    /// <summary>Provided receive buffers per ring (power of two, 1 to 32768). Default: 512.</summary>
    public int ProvidedBufferCount { get; set; } = 512;

    /// <summary>Disables Nagle's algorithm (TCP_NODELAY) on every TCP connection. Default: true.</summary>
    public bool NoDelay { get; set; } = true;

    /// <summary>Maximum length of the pending-connection queue of each listening socket (at least 1). Default: 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>
    /// Bytes the transport buffers from a connection before it stops receiving, until the application
    /// reads half of it. Null means no limit. Default: 1 MiB.
    /// </summary>
    public long? MaxReadBufferSize { get; set; } = 1024 * 1024;

    /// <summary>
    /// Bytes the application may have buffered for sending before its flushes wait, until half is sent.
    /// Null means no limit. Default: 64 KiB.
    /// </summary>
    public long? MaxWriteBufferSize { get; set; } = 64 * 1024;

    /// <summary>
    /// Runs application code (request processing) inline on the I/O loop threads instead of the thread pool.
    /// Faster, but any blocking in application code stalls every connection of that loop. Default: false.
    /// </summary>
    public bool UnsafePreferInlineScheduling { get; set; }

    /// <summary>
    /// Gives each I/O loop its own TCP listening socket (SO_REUSEPORT), so the kernel spreads new
    /// connections across loops. When false, one loop accepts and hands connections out round-robin.
    /// Unix sockets and inherited handles always use one accepting loop. Default: true.
    /// </summary>
    public bool ListenerSharding { get; set; } = true;

    /// <summary>
    /// How the kernel picks among the loops' listening sockets (<see cref="ListenerSharding"/>) for a
    /// new TCP connection. Default: <see cref="Transport.ListenerSteering.Auto"/> (to the loop on the
    /// CPU that received the connection when every loop has a CPU of its own, as with the defaults;
    /// otherwise by flow hash). <see cref="Transport.ListenerSteering.Hash"/> always uses the flow hash.
    /// </summary>
    public ListenerSteering ListenerSteering { get; set; } = ListenerSteering.Auto;

    /// <summary>
    /// Whether each I/O loop's thread is bound to a CPU. Default: <see cref="Transport.LoopAffinity.Auto"/>
    /// (bound when there is exactly one loop per CPU the process may use, as with the default
    /// <see cref="RingCount"/>: each loop then keeps its CPU's caches).
    /// </summary>
    public LoopAffinity LoopAffinity { get; set; } = LoopAffinity.Auto;

    /// <summary>
    /// Sends of at least this many bytes use zero-copy (IORING_OP_SENDMSG_ZC: the pages go to the
    /// network device without a copy into the kernel), where the kernel offers it with usage reports
    /// (6.2+, io_uring engine). A connection whose zero-copy send the kernel reports it copied anyway
    /// (loopback, some devices) goes on with plain sends. 0 disables zero-copy. Default: 0 (off):
    /// on loopback, the only network measured so far, it did not pay; 16384 is a reasonable value
    /// to try behind a real network device.
    /// </summary>
    public int ZeroCopySendThreshold { get; set; }

    /// <summary>
    /// Kernel features the io_uring engine must not use, as if the kernel lacked them: comma-separated
    /// names as the engine's log line lists them (for example <c>MultishotRecv,SendZc</c>), each
    /// replaced by its fallback. For working around a kernel bug, or measuring what a feature buys.
    /// An unknown name fails at start-up. Default: null (every feature the kernel offers).
    /// </summary>
    public string? DisabledKernelFeatures { get; set; }
}
