using Uring.Native.IoUring;

namespace Uring.Native;

/// <summary>Chooses an engine and creates rings.</summary>
public static class RingFactory
{
    /// <summary>
    /// Opcodes the transport issues (accept, receive, send, connect, close, cancel) and the ring
    /// itself does (NOP for the set-up round trip, READ of its wake eventfd). The zero-copy sends are
    /// optional: used only when the kernel has them and <c>ZeroCopySendThreshold</c> asks for them.
    /// </summary>
    public static readonly IoUringOp[] RequiredOps =
    [
        IoUringOp.Nop, IoUringOp.Accept, IoUringOp.Recv, IoUringOp.Send, IoUringOp.SendMsg,
        IoUringOp.Connect, IoUringOp.Read, IoUringOp.Close, IoUringOp.AsyncCancel,
    ];

    /// <summary>
    /// Creates a ring of the engine <see cref="Select"/> picks, not yet enabled: call
    /// <see cref="IRing.Enable"/> on the thread that will own it.
    /// </summary>
    /// <exception cref="RingException">io_uring was demanded (option or environment) and cannot be set up.</exception>
    public static IRing Create(RingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        EngineSelection selection = Select(options);
        return Create(selection.Engine, options);
    }

    /// <summary>Creates a ring of a known engine (IoUring or Epoll), as <see cref="Select"/> returned it.</summary>
    public static IRing Create(RingEngine engine, RingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return engine switch
        {
            RingEngine.IoUring => CreateIoUring(options),
            RingEngine.Epoll => new EpollRing(options.Entries, options.FeatureLimit),
            _ => throw new ArgumentOutOfRangeException(nameof(engine), engine, "Pass IoUring or Epoll; use Select to resolve Auto."),
        };
    }

    private static IoUringRing CreateIoUring(RingOptions options)
    {
        try
        {
            return IoUringRing.Create(options);
        }
        catch (RingException e)
        {
            throw new RingException(e.Errno, $"Engine=IoUring was requested, but {e.Message.Replace(" failed: ", " failed with ")}: {Explain(e.Errno)}");
        }
    }

    /// <summary>
    /// The engine these options lead to and why. <see cref="RingOptions.EngineEnvironmentVariable"/>
    /// overrides <see cref="RingOptions.Engine"/>. Auto picks io_uring only if a ring can be set up,
    /// a NOP round-trips, a provided-buffer ring registers and the probe lists every
    /// <see cref="RequiredOps"/> opcode (see <see cref="KernelProbe"/>, run once per process).
    /// </summary>
    /// <exception cref="ArgumentException">The environment variable holds an unknown value.</exception>
    public static EngineSelection Select(RingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string? env = Environment.GetEnvironmentVariable(RingOptions.EngineEnvironmentVariable);
        RingEngine requested = options.Engine;
        string source = $"Engine={options.Engine} in options";
        if (!string.IsNullOrWhiteSpace(env))
        {
            requested = ParseEngine(env);
            source = $"{RingOptions.EngineEnvironmentVariable}={env.Trim()}";
        }

        switch (requested)
        {
            case RingEngine.Epoll:
                return new EngineSelection(RingEngine.Epoll, $"epoll forced by {source}");
            case RingEngine.IoUring:
                return new EngineSelection(RingEngine.IoUring, $"io_uring forced by {source}");
        }

        string? problem = ProbeIoUring(options, out string detail);
        return problem is null
            ? new EngineSelection(RingEngine.IoUring, $"io_uring available ({detail})")
            : new EngineSelection(RingEngine.Epoll, $"io_uring unusable, using epoll: {problem}");
    }

    /// <summary>Parses iouring / io_uring / epoll / auto, case-insensitive.</summary>
    public static RingEngine ParseEngine(string value) => value.Trim().ToLowerInvariant() switch
    {
        "iouring" or "io_uring" or "io-uring" or "uring" => RingEngine.IoUring,
        "epoll" => RingEngine.Epoll,
        "auto" or "" => RingEngine.Auto,
        _ => throw new ArgumentException(
            $"{RingOptions.EngineEnvironmentVariable}='{value}' is not an engine; use iouring, epoll or auto.",
            RingOptions.EngineEnvironmentVariable),
    };

    private static string? ProbeIoUring(RingOptions options, out string detail)
    {
        detail = "";
        int injected = options.InjectSetupErrno?.Invoke() ?? 0;
        KernelProbe probe = injected > 0 ? KernelProbe.Injected(injected) : KernelProbe.Current;
        if (probe.Problem is not null)
            return probe.SetupErrno != 0 ? $"{probe.Problem}: {Explain(probe.SetupErrno)}" : probe.Problem;
        detail = probe.Describe();
        return null;
    }

    /// <summary>What an io_uring_setup errno usually means, for operators.</summary>
    internal static string Explain(int errno)
    {
        switch (Math.Abs(errno))
        {
            case Errno.ENOSYS:
                return "this kernel has no io_uring (built without it, or older than 5.1); io_uring needs Linux 5.19+ here";
            case Errno.EPERM:
            case Errno.EACCES:
                string sysctl = ReadSysctl("/proc/sys/kernel/io_uring_disabled");
                return sysctl switch
                {
                    "2" => "kernel.io_uring_disabled=2 (io_uring disabled for every process)",
                    "1" => "kernel.io_uring_disabled=1 (io_uring only for members of kernel.io_uring_group)",
                    _ => $"kernel.io_uring_disabled={sysctl}; a seccomp filter (e.g. Docker's default profile) or an LSM is blocking io_uring",
                };
            case Errno.ENOMEM:
                return "not enough locked memory (RLIMIT_MEMLOCK; kernels before 5.12 charge rings to it)";
            case Errno.EINVAL:
                return "the kernel rejected the ring parameters";
            default:
                return "io_uring_setup is not available";
        }
    }

    private static string ReadSysctl(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path).Trim() : "absent";
        }
        catch (IOException) { return "unreadable"; }
        catch (UnauthorizedAccessException) { return "unreadable"; }
    }
}
