using System.Text;
using Uring.Native.Interop;
using Uring.Native.IoUring;
using static Uring.Native.IoUring.IoUringConstants;

namespace Uring.Native;

/// <summary>
/// What this kernel's io_uring offers, found out once per process: the setup flags it accepts,
/// the opcodes its probe lists, and, where a probe cannot tell (a flag on an existing opcode), a
/// real try: a multishot receive on a socket pair, a multishot accept on a listening socket,
/// zero-copy usage reports, bundles, sparse registrations, socket commands. Rings take their
/// <see cref="IRing.Features"/> from here.
/// </summary>
internal sealed unsafe class KernelProbe
{
    private static readonly Lazy<KernelProbe> s_current = new(Run, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Opcodes the transport issues (accept, receive, send, connect, close, cancel) and the ring
    /// itself does (NOP for the set-up round trip, READ of its wake eventfd). The zero-copy send is
    /// optional: used only where the kernel has it (<see cref="RingFeatures.SendZc"/>).
    /// </summary>
    public static readonly IoUringOp[] RequiredOps =
    [
        IoUringOp.Nop, IoUringOp.Accept, IoUringOp.Recv, IoUringOp.Send, IoUringOp.SendMsg,
        IoUringOp.Connect, IoUringOp.Read, IoUringOp.Close, IoUringOp.AsyncCancel,
    ];

    private KernelProbe(string? problem, int setupErrno, uint setupFlags, uint kernelFeatureFlags, RingFeatures features)
    {
        Problem = problem;
        SetupErrno = setupErrno;
        SetupFlags = setupFlags;
        KernelFeatureFlags = kernelFeatureFlags;
        Features = features;
    }

    /// <summary>The probe of this process's kernel (run on first use).</summary>
    public static KernelProbe Current => s_current.Value;

    /// <summary>Why io_uring cannot serve the transport here, or null when it can.</summary>
    public string? Problem { get; }

    /// <summary>The errno io_uring_setup failed with, or 0.</summary>
    public int SetupErrno { get; }

    /// <summary>The optional IORING_SETUP_* flags the kernel accepted.</summary>
    public uint SetupFlags { get; }

    /// <summary>The IORING_FEAT_* flags the kernel reported.</summary>
    public uint KernelFeatureFlags { get; }

    /// <summary>The optional features found.</summary>
    public RingFeatures Features { get; }

    /// <summary>"setup flags X|Y; features A, B" for the engine log line: the features of <paramref name="allowed"/> the kernel has.</summary>
    public string Describe(RingFeatures allowed) =>
        new StringBuilder("setup flags ").Append(IoUringRing.DescribeSetupFlags(SetupFlags))
            .Append("; features ").Append(Names(Features & allowed)).ToString();

    /// <summary>"MultishotAccept, MultishotRecv, ..." (or "none") for a set of features.</summary>
    public static string Names(RingFeatures features)
    {
        var names = new List<string>();
        for (uint bit = 1; bit < (uint)RingFeatures.All; bit <<= 1)
            if (((uint)features & bit) != 0) names.Add(((RingFeatures)bit).ToString());
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    /// <summary>The probe's answer had io_uring_setup failed with <paramref name="setupErrno"/> (a test's injection), not cached.</summary>
    internal static KernelProbe Refused(int setupErrno) =>
        new($"io_uring_setup failed: {Errno.Describe(setupErrno)}", setupErrno, 0, 0, RingFeatures.None);

    /// <summary>What an io_uring_setup errno usually means, for operators.</summary>
    public static string Explain(int errno)
    {
        switch (Errno.Magnitude(errno))
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
                    _ => ReadSeccompMode() switch
                    {
                        "2" => $"kernel.io_uring_disabled={sysctl}, and this process runs under a seccomp filter (Seccomp: 2 in /proc/self/status), " +
                            "which most likely refuses io_uring, as Docker's default profile does; else an LSM is blocking it",
                        "0" => $"kernel.io_uring_disabled={sysctl} and no seccomp filter applies: an LSM (SELinux, AppArmor) or a sandbox is blocking io_uring",
                        _ => $"kernel.io_uring_disabled={sysctl}; a seccomp filter (e.g. Docker's default profile) or an LSM is blocking io_uring",
                    },
                };
            case Errno.ENOMEM:
                return "not enough locked memory (RLIMIT_MEMLOCK; kernels before 5.12 charge rings to it)";
            case Errno.EINVAL:
                return "the kernel rejected the ring parameters";
            default:
                return "io_uring_setup is not available";
        }
    }

    // The calling thread's seccomp mode (0 none, 1 strict, 2 filter; filters are per thread), or null if unknown.
    private static string? ReadSeccompMode()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/thread-self/status"))
                if (line.StartsWith("Seccomp:", StringComparison.Ordinal)) return line["Seccomp:".Length..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
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

    private static KernelProbe Run()
    {
        // SINGLE_ISSUER binds a ring to whoever enables it: the probe ring gets a thread of its own.
        KernelProbe? result = null;
        var thread = new Thread(() => result = RunOnThisThread()) { IsBackground = true, Name = "io_uring probe" };
        thread.Start();
        thread.Join();
        return result!;
    }

    private static KernelProbe RunOnThisThread()
    {
        uint every = IORING_SETUP_NO_SQARRAY | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED;
        IoUringRing ring;
        try
        {
            ring = IoUringRing.CreateWithFlags(8, every, RingFeatures.All);
        }
        catch (RingException e)
        {
            return new KernelProbe(e.Message, e.Errno, 0, 0, RingFeatures.None);
        }
        using (ring)
        {
            uint setupFlags = ring.SetupFlags & every;
            try
            {
                ring.Enable();
                string? problem = CheckRequired(ring);
                if (problem is not null) return new KernelProbe(problem, 0, setupFlags, ring.KernelFeatureFlags, RingFeatures.None);
                // Setup-flag features are known from the setup; the others are tried below.
                RingFeatures features = ring.Features & (RingFeatures.SubmitAll | RingFeatures.CoopTaskrun |
                    RingFeatures.SingleIssuer | RingFeatures.DeferTaskrun | RingFeatures.NoSqArray | RingFeatures.RegisteredRingFd);
                // (RegisteredRingFd stays in Features only when Enable's registration worked.)
                features |= TryOptional(ring);
                return new KernelProbe(null, 0, setupFlags, ring.KernelFeatureFlags, features);
            }
            catch (RingException e)
            {
                return new KernelProbe(e.Message, 0, setupFlags, ring.KernelFeatureFlags, RingFeatures.None);
            }
        }
    }

    private static string? CheckRequired(IoUringRing ring)
    {
        var missing = RequiredOps.Where(op => !ring.Supports(op)).ToArray();
        if (missing.Length > 0)
            return $"the kernel lacks opcodes {string.Join(", ", missing.Select(o => "IORING_OP_" + o.ToString().ToUpperInvariant()))}";
        if ((ring.KernelFeatureFlags & IORING_FEAT_FAST_POLL) == 0)
            return "the kernel lacks IORING_FEAT_FAST_POLL (needs 5.7+)";

        const ulong token = 0x4E4F50;
        ring.PrepareNop(token);
        Completion done;
        int r = WaitOne(ring, token, out done);
        if (r < 0) return $"io_uring_enter failed: {Errno.Describe(r)}";
        if (r == 0 || done.Result != 0) return "a NOP did not round-trip through io_uring_enter";

        using var buffers = new ProvidedBufferRing(0x7FFF, 1, 64);
        int reg = ring.RegisterBufferRing(buffers);
        if (reg < 0) return $"IORING_REGISTER_PBUF_RING failed: {Errno.Describe(reg)} (provided-buffer rings need 5.19+)";
        ring.UnregisterBufferRing(buffers);
        return null;
    }

    private static bool TryBufferRingStatus(IoUringRing ring)
    {
        using var buffers = new ProvidedBufferRing(0x7FFA, 2, 64);
        if (ring.RegisterBufferRing(buffers) < 0) return false;
        try
        {
            IoUringBufStatus status = default;
            status.BufGroup = buffers.GroupId;
            return ring.Register(IORING_REGISTER_PBUF_STATUS, &status, 1) == 0 && status.Head == 0;
        }
        finally
        {
            ring.UnregisterBufferRing(buffers);
        }
    }

    private static RingFeatures TryOptional(IoUringRing ring)
    {
        RingFeatures found = RingFeatures.None;
        if (ring.Supports(IoUringOp.AsyncCancel) && TryCancelAny(ring)) found |= RingFeatures.CancelAny;
        // The transport sends zero-copy with SENDMSG_ZC (6.1), and only where usage is reported (6.2).
        if (ring.Supports(IoUringOp.SendZc) && ring.Supports(IoUringOp.SendMsgZc)
            && FlagAccepted(ring, IoUringOp.SendZc, IORING_SEND_ZC_REPORT_USAGE, bufferSelect: false))
            found |= RingFeatures.SendZc;
        if (TrySyncCancel(ring)) found |= RingFeatures.SyncCancel;
        if (TryBufferRingStatus(ring)) found |= RingFeatures.BufferRingStatus;

        int* pair = stackalloc int[2];
        if (Libc.socketpair(Linux.AF_UNIX, Linux.SOCK_STREAM | Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC, 0, pair) == 0)
        {
            try
            {
                if (TryMultishotRecv(ring, pair[0], pair[1])) found |= RingFeatures.MultishotRecv;
            }
            finally
            {
                Libc.close(pair[0]);
                Libc.close(pair[1]);
            }
        }
        if (TryMultishotAccept(ring)) found |= RingFeatures.MultishotAccept;
        return found;
    }

    // Submits what is prepared and waits (up to 1 s) for the completion of token; 1 when it came, 0 when not, or -errno.
    private static int WaitOne(IoUringRing ring, ulong token, out Completion completion)
    {
        Span<Completion> batch = stackalloc Completion[8];
        long deadline = Environment.TickCount64 + 1000;
        while (Environment.TickCount64 < deadline)
        {
            int r = ring.SubmitAndWait(1, 100);
            if (r < 0) { completion = default; return r; }
            int n = ring.DrainCompletions(batch);
            for (int i = 0; i < n; i++)
            {
                if (batch[i].UserData == token && (batch[i].Flags & CompletionFlags.Notification) == 0)
                {
                    completion = batch[i];
                    return 1;
                }
            }
        }
        completion = default;
        return 0;
    }

    private static bool TryCancelAny(IoUringRing ring)
    {
        const ulong token = 0xCA1;
        ring.PrepareCancelAll(token);
        return WaitOne(ring, token, out Completion c) == 1 && c.Result >= 0; // EINVAL before 5.19
    }

    // Before 6.0 the opcode is unknown (EINVAL); after, a user_data nothing was submitted with is ENOENT.
    private static bool TrySyncCancel(IoUringRing ring)
    {
        IoUringSyncCancelReg reg = default;
        reg.Addr = 0x5C;
        reg.Fd = -1;
        reg.Timeout.TvSec = reg.Timeout.TvNsec = -1;
        return ring.Register(IORING_REGISTER_SYNC_CANCEL, &reg, 1) == -Errno.ENOENT;
    }

    // A flag the opcode's prep does not know fails with EINVAL before the fd (-1) is looked up (EBADF).
    private static bool FlagAccepted(IoUringRing ring, IoUringOp op, ushort ioprio, bool bufferSelect)
    {
        const ulong token = 0xF1A6;
        IoUringSqe* sqe = ring.PrepareRaw(op, -1, token);
        sqe->IoPrio = ioprio;
        if (bufferSelect)
        {
            sqe->Flags = IOSQE_BUFFER_SELECT;
            sqe->BufIndex = 0x7FFD;
        }
        bool accepted = WaitOne(ring, token, out Completion c) == 1 && c.Result == -Errno.EBADF;
        DrainFor(ring, 20); // a SEND_ZC may post its notification after the result
        return accepted;
    }

    private static bool TryMultishotRecv(IoUringRing ring, int receiver, int sender)
    {
        const ulong token = 0x3E5;
        using var buffers = new ProvidedBufferRing(0x7FFB, 4, 64);
        if (ring.RegisterBufferRing(buffers) < 0) return false;
        try
        {
            ring.PrepareRecvMultishot(receiver, buffers.GroupId, token);
            byte one = 1;
            Libc.write(sender, &one, 1);
            bool came = WaitOne(ring, token, out Completion c) == 1;
            bool ok = came && c.Result == 1 && c.HasMore; // EINVAL before 6.0
            if (!came || c.HasMore) EndMultishot(ring, token, closeResults: false);
            return ok;
        }
        finally
        {
            ring.UnregisterBufferRing(buffers);
        }
    }

    private static bool TryMultishotAccept(IoUringRing ring)
    {
        const ulong token = 0xACC;
        int listener = Libc.socket(Linux.AF_UNIX, Linux.SOCK_STREAM | Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC, 0);
        if (listener < 0) return false;
        int client = -1;
        try
        {
            // Autobind (an address of just the family) gives a unique abstract name.
            byte* addr = stackalloc byte[SockAddr.MaxSize];
            *(ushort*)addr = Linux.AF_UNIX;
            if (Libc.bind(listener, addr, 2) < 0 || Libc.listen(listener, 4) < 0) return false;
            uint len = SockAddr.MaxSize;
            if (Libc.getsockname(listener, addr, &len) < 0) return false;

            ring.PrepareAcceptMultishot(listener, Linux.SOCK_CLOEXEC, token);
            client = Libc.socket(Linux.AF_UNIX, Linux.SOCK_STREAM | Linux.SOCK_CLOEXEC, 0);
            if (client < 0 || Libc.connect(client, addr, (int)len) < 0) return false;
            bool came = WaitOne(ring, token, out Completion c) == 1;
            bool ok = came && c.Result >= 0 && c.HasMore; // a one-shot accept before 5.19
            if (came && c.Result >= 0) Libc.close(c.Result);
            if (!came || c.HasMore) EndMultishot(ring, token, closeResults: true); // also when it never answered: cancel it
            return ok;
        }
        finally
        {
            if (client >= 0) Libc.close(client);
            Libc.close(listener);
        }
    }

    // Cancels a multishot probe and waits for its final completion; closeResults: results are accepted fds.
    private static void EndMultishot(IoUringRing ring, ulong token, bool closeResults)
    {
        ring.PrepareCancel(token, 0xCA2);
        long deadline = Environment.TickCount64 + 1000;
        Span<Completion> batch = stackalloc Completion[8];
        while (Environment.TickCount64 < deadline)
        {
            ring.SubmitAndWait(1, 100);
            int n = ring.DrainCompletions(batch);
            for (int i = 0; i < n; i++)
            {
                if (batch[i].UserData != token) continue;
                if (closeResults && batch[i].Result >= 0) Libc.close(batch[i].Result);
                if (!batch[i].HasMore) return;
            }
        }
    }

    private static void DrainFor(IoUringRing ring, int milliseconds)
    {
        Span<Completion> batch = stackalloc Completion[8];
        ring.SubmitAndWait(1, milliseconds);
        while (ring.DrainCompletions(batch) > 0) { }
    }
}
