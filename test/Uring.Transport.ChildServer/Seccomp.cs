using System.Runtime.InteropServices;

namespace Uring.Transport.ChildServer;

/// <summary>
/// A real kernel seccomp filter that refuses io_uring as Docker's default profile does:
/// io_uring_setup, io_uring_enter and io_uring_register fail with EPERM, every other system call
/// is allowed. Installed on every thread of the process (the runtime's included) with
/// SECCOMP_FILTER_FLAG_TSYNC; threads created later inherit it. It cannot be removed.
/// </summary>
internal static unsafe partial class Seccomp
{
    // <linux/prctl.h>, <linux/seccomp.h>, <linux/filter.h>, <linux/audit.h>
    private const int PR_SET_NO_NEW_PRIVS = 38;
    private const uint SECCOMP_SET_MODE_FILTER = 1;
    private const uint SECCOMP_FILTER_FLAG_TSYNC = 1;
    private const uint SECCOMP_RET_ALLOW = 0x7fff0000;
    private const uint SECCOMP_RET_ERRNO = 0x00050000;
    private const ushort BPF_LD_W_ABS = 0x00 | 0x00 | 0x20;   // BPF_LD | BPF_W | BPF_ABS
    private const ushort BPF_JMP_JEQ_K = 0x05 | 0x10 | 0x00;  // BPF_JMP | BPF_JEQ | BPF_K
    private const ushort BPF_RET_K = 0x06 | 0x00;             // BPF_RET | BPF_K
    private const uint OffsetOfNr = 0;                        // struct seccomp_data { int nr; __u32 arch; ... }
    private const uint OffsetOfArch = 4;
    private const uint AUDIT_ARCH_X86_64 = 0xC000003E;        // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    private const uint AUDIT_ARCH_AARCH64 = 0xC00000B7;       // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    private const uint EPERM = 1;

    // The same numbers on x86_64 and aarch64 (they came after the unified table).
    public const long SYS_io_uring_setup = 425;
    public const long SYS_io_uring_enter = 426;
    public const long SYS_io_uring_register = 427;

    /// <summary>Installs the filter on every thread; throws if the kernel refuses it.</summary>
    public static void DenyIoUring()
    {
        (uint arch, long sysSeccomp) = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => (AUDIT_ARCH_X86_64, 317L),
            Architecture.Arm64 => (AUDIT_ARCH_AARCH64, 277L),
            Architecture a => throw new PlatformNotSupportedException($"No seccomp filter for {a}."),
        };
        // Without CAP_SYS_ADMIN a filter may be installed only under no_new_privs (TSYNC sets it on every thread).
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            throw new InvalidOperationException($"prctl(PR_SET_NO_NEW_PRIVS) failed: errno {Marshal.GetLastPInvokeError()}");

        // Jumps count the instructions to skip. Another architecture's system calls (none here:
        // the runtime makes only native ones) have other numbers and are let through.
        SockFilter* program = stackalloc SockFilter[]
        {
            /* 0 */ new(BPF_LD_W_ABS, 0, 0, OffsetOfArch),
            /* 1 */ new(BPF_JMP_JEQ_K, 0, 4, arch),                    // not native: 6, allow
            /* 2 */ new(BPF_LD_W_ABS, 0, 0, OffsetOfNr),
            /* 3 */ new(BPF_JMP_JEQ_K, 3, 0, (uint)SYS_io_uring_setup),       // 7, EPERM
            /* 4 */ new(BPF_JMP_JEQ_K, 2, 0, (uint)SYS_io_uring_enter),       // 7, EPERM
            /* 5 */ new(BPF_JMP_JEQ_K, 1, 0, (uint)SYS_io_uring_register),    // 7, EPERM
            /* 6 */ new(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
            /* 7 */ new(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
        };
        var fprog = new SockFprog { Length = 8, Filter = program };
        // 0 on success; with TSYNC, a positive thread id for a thread that could not be synchronized.
        long r = syscall(sysSeccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, (nint)(&fprog), 0, 0, 0);
        if (r != 0)
            throw new InvalidOperationException(r < 0
                ? $"seccomp(SECCOMP_SET_MODE_FILTER) failed: errno {Marshal.GetLastPInvokeError()}"
                : $"seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) could not synchronize thread {r}");
    }

    /// <summary>
    /// What the three io_uring system calls answer now, called directly: "io_uring_setup=EPERM
    /// io_uring_enter=EPERM io_uring_register=EPERM" under the filter. Without it, setup creates a
    /// ring (closed at once: "fd"), and enter and register on fd -1 fail with another errno (EBADF, EINVAL).
    /// </summary>
    public static string TryIoUring()
    {
        byte* parameters = stackalloc byte[120]; // struct io_uring_params, zeroed
        new Span<byte>(parameters, 120).Clear();
        long setup = syscall(SYS_io_uring_setup, 1, (nint)parameters, 0, 0, 0, 0);
        string setupResult = Result(setup);
        if (setup >= 0)
        {
            close((int)setup);
            setupResult = "fd";
        }
        string enter = Result(syscall(SYS_io_uring_enter, -1, 0, 0, 0, 0, 0));
        string register = Result(syscall(SYS_io_uring_register, -1, 0, 0, 0, 0, 0));
        return $"io_uring_setup={setupResult} io_uring_enter={enter} io_uring_register={register}";
    }

    private static string Result(long r)
    {
        if (r >= 0) return r.ToString();
        int errno = Marshal.GetLastPInvokeError();
        return errno == (int)EPERM ? "EPERM" : $"errno {errno}";
    }

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct SockFilter(ushort code, byte jt, byte jf, uint k)
    {
        public readonly ushort Code = code;
        public readonly byte JumpTrue = jt;
        public readonly byte JumpFalse = jf;
        public readonly uint K = k;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFprog
    {
        public ushort Length;
        public SockFilter* Filter;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
