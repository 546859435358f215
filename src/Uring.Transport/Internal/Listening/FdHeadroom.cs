using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// Keeps file descriptors for the runtime: acceptors stop short of a reserve below RLIMIT_NOFILE (at
/// EMFILE .NET cannot even start a thread, and a timer or a thread-pool injection then ends the
/// process), and resume as soon as a connection of the process closes, or after
/// <see cref="MaxPauseMilliseconds"/> at most. Process-wide, as fds are.
/// </summary>
/// <remarks>
/// Where the process stands is read off the fds accept returns: the kernel hands out the lowest free
/// number, so an accepted fd f means every number below it is open. An acceptor pauses once the
/// next accept could take a reserved number (f + 1 at the reserve), and accepts one connection at a
/// time from a listen backlog's worth before that (a multishot accept may take a whole backlog in
/// one round). An accept that fails with EMFILE or ENFILE pauses too.
/// </remarks>
internal static class FdHeadroom
{
    /// <summary>The longest a pause lasts without a close to end it (fds may be freed by others than our connections).</summary>
    public const int MaxPauseMilliseconds = 1000;

    private static readonly object s_gate = new();
    private static readonly List<Acceptor> s_paused = new();
    private static int s_pausedCount;
    private static long s_reserveFrom = -1; // the first reserved fd number; read at first use and at each pause
    private static int s_logged;            // 1: this episode of pauses was logged

    static FdHeadroom()
    {
        // The pause's cap waits on a runtime timer. .NET starts its timer thread when the first
        // timer comes due, and starting a thread takes fds: at EMFILE, just when the cap is needed,
        // Task.Delay would throw. So the timer thread starts now.
        _ = Task.Delay(1);
    }

    /// <summary>Fds kept for the runtime and the application: 1/16 of the limit, 16 to 64.</summary>
    public static long Reserve(long limit) => Math.Clamp(limit / 16, 16, 64);

    /// <summary>An accept returned <paramref name="fd"/>: whether the next one could take a reserved number.</summary>
    public static bool AtReserve(int fd) => fd + 1L >= ReserveFrom();

    /// <summary>An accept returned <paramref name="fd"/>: whether a round of up to <paramref name="backlog"/> more could reach the reserve.</summary>
    public static bool NearReserve(int fd, int backlog) => fd + 1L + backlog >= ReserveFrom();

    /// <summary>
    /// <paramref name="acceptor"/> stops accepting until a connection closes (or the cap): logged once
    /// per episode, with <paramref name="fd"/> (the accepted fd, or -1 after EMFILE).
    /// </summary>
    public static void Pause(Acceptor acceptor, int fd, ILogger logger)
    {
        long limit = ProcessLimits.OpenFiles();
        Volatile.Write(ref s_reserveFrom, -1); // read again: operators may raise the limit at run time
        lock (s_gate)
        {
            if (!s_paused.Contains(acceptor)) s_paused.Add(acceptor);
            Volatile.Write(ref s_pausedCount, s_paused.Count);
        }
        if (Interlocked.Exchange(ref s_logged, 1) == 0)
            UringLog.AcceptPausedForFds(logger, acceptor.EndPoint, fd >= 0 ? fd + 1 : limit, limit, Reserve(limit), MaxPauseMilliseconds);
        _ = Task.Delay(MaxPauseMilliseconds).ContinueWith(static _ => ResumeAll(), TaskScheduler.Default);
    }

    /// <summary>An accept succeeded away from the reserve: the episode is over (the next pause is logged again).</summary>
    public static void Accepted()
    {
        if (Volatile.Read(ref s_logged) != 0 && Volatile.Read(ref s_pausedCount) == 0) Volatile.Write(ref s_logged, 0);
    }

    /// <summary>A connection of the process closed its fd: paused acceptors try again. Any thread; cheap when none waits.</summary>
    public static void FdClosed()
    {
        if (Volatile.Read(ref s_pausedCount) != 0) ResumeAll();
    }

    private static void ResumeAll()
    {
        Acceptor[] paused;
        lock (s_gate)
        {
            if (s_paused.Count == 0) return;
            paused = [.. s_paused];
            s_paused.Clear();
            Volatile.Write(ref s_pausedCount, 0);
        }
        foreach (Acceptor acceptor in paused) acceptor.ResumeAfterPause();
    }

    private static long ReserveFrom()
    {
        long from = Volatile.Read(ref s_reserveFrom);
        if (from >= 0) return from;
        long limit = ProcessLimits.OpenFiles();
        from = limit == long.MaxValue ? long.MaxValue : limit - Reserve(limit);
        Volatile.Write(ref s_reserveFrom, from);
        return from;
    }
}
