using Microsoft.Extensions.Logging;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// Keeps file descriptors for the runtime: acceptors stop short of a reserve below RLIMIT_NOFILE (at
/// EMFILE .NET cannot even start a thread, and a timer or a thread-pool injection then ends the
/// process), and resume as soon as a connection of the process closes, or after a cap of
/// <see cref="MinPauseMilliseconds"/> doubling to <see cref="MaxPauseMilliseconds"/>. Process-wide, as fds are.
/// </summary>
/// <remarks>
/// A multishot round (the epoll engine's too) may take a whole backlog before its first completion
/// is seen, so multishot accepts are armed only while a round of every acceptor (backlog + 1 each)
/// fits below the reserve by an estimate of the fds open: the connections open now plus the others
/// (the most any accepted fd or probe has shown: the kernel hands out the lowest free number, so a
/// new fd f means every number below it is open). The estimate can be low (fds opened in holes
/// since) or high (it is never lowered); a probe (a dup of the listening fd, closed at once) raises
/// it before each multishot arm. When a round no longer fits, every acceptor is told to drop its
/// multishot accept, and accepts are single-shot, each holding a slot: one fd number of its own
/// below the reserve. Within a margin (one reserve again) of the reserve, a slot is taken only when
/// a probe finds the k lowest free numbers all below it (k: the slots armed, this one, and one
/// more: a probe holds one number at a time, so an accept running meanwhile may get the next one
/// up), one prober at a time; else the acceptor pauses. An accept that fails with EMFILE or ENFILE
/// pauses too, the backstop. RLIMIT_NOFILE is read again before each arm, as an operator may change
/// it at run time (and io_uring's accept keeps the limit of its preparation).
/// </remarks>
internal static class FdHeadroom
{
    /// <summary>
    /// The longest a pause lasts without a close to end it (fds may be freed by others than our
    /// connections, and a close may be missed); then the acceptors probe again. The first cap after an arm is
    /// <see cref="MinPauseMilliseconds"/>, doubling up to this while no arm succeeds.
    /// </summary>
    public const int MaxPauseMilliseconds = 1000;

    /// <summary>The first cap of a pause after an acceptor last armed.</summary>
    public const int MinPauseMilliseconds = 50;

    /// <summary>Pauses are logged at most once in this time: at the limit they may come every few connections.</summary>
    public const int LogIntervalMilliseconds = 60_000;

    private static readonly object s_gate = new();
    private static readonly List<Acceptor> s_paused = new();
    private static int s_pausedCount;
    private static int s_capPending;  // 1: a timer will resume the paused acceptors
    private static int s_capMs = MinPauseMilliseconds; // the next cap: doubles while no arm succeeds
    private static long s_reserveFrom = long.MaxValue; // the first reserved fd number, as of the last arm
    private static long s_limit = long.MaxValue; // RLIMIT_NOFILE, as of the last arm
    private static long s_loggedAt = -LogIntervalMilliseconds; // Environment.TickCount64 of the last pause logged
    private static int s_connections; // connections holding an fd: from their creation to their close
    private static readonly List<Acceptor> s_acceptors = new(); // started ones, under s_gate
    private static readonly object s_probeGate = new();
    private static long s_others;     // fds open besides connections: an estimate (see the remarks)
    private static long s_round;      // the most one multishot round of every acceptor may take
    private static int s_roomSeen;    // 1: an acceptor armed multishot since the last time a round did not fit
    private static int s_slots;       // single-shot accepts armed, each with a free number below the reserve
    private static long s_closes;     // connections closed so far: a pause that begins after a probe misses none

    static FdHeadroom()
    {
        // The pause's cap waits on a runtime timer. .NET starts its timer thread when the first
        // timer comes due, and starting a thread takes fds: at EMFILE, just when the cap is needed,
        // Task.Delay would throw. So the timer thread starts now.
        _ = Task.Delay(1);
    }

    /// <summary>Fds kept for the runtime and the application: 1/16 of the limit, 16 to 64.</summary>
    public static long Reserve(long limit) => Math.Clamp(limit / 16, 16, 64);

    /// <summary><paramref name="acceptor"/> may arm (one round: its backlog + 1 connections).</summary>
    public static void AcceptorAdded(Acceptor acceptor, int backlog)
    {
        lock (s_gate) s_acceptors.Add(acceptor);
        Interlocked.Add(ref s_round, backlog + 1L);
    }

    /// <summary>That acceptor is done.</summary>
    public static void AcceptorRemoved(Acceptor acceptor, int backlog)
    {
        lock (s_gate) s_acceptors.Remove(acceptor);
        Interlocked.Add(ref s_round, -(backlog + 1L));
    }

    /// <summary>A connection took ownership of its fd.</summary>
    public static void ConnectionOpened() => Interlocked.Increment(ref s_connections);

    /// <summary>
    /// A connection's fd is closed (or its loop is gone): paused acceptors try again. Any thread;
    /// cheap when none waits.
    /// </summary>
    public static void ConnectionClosed()
    {
        Interlocked.Decrement(ref s_connections);
        Interlocked.Increment(ref s_closes);
        if (Volatile.Read(ref s_pausedCount) != 0) ResumeAll();
    }

    /// <summary>An acceptor is about to arm: reads RLIMIT_NOFILE again.</summary>
    public static void ReadLimit()
    {
        long limit = ProcessLimits.OpenFiles();
        Volatile.Write(ref s_limit, limit);
        Volatile.Write(ref s_reserveFrom, limit == long.MaxValue ? long.MaxValue : limit - Reserve(limit));
    }

    /// <summary>Connections closed so far: read before a probe, handed to <see cref="Pause"/>.</summary>
    public static long Closes => Volatile.Read(ref s_closes);

    /// <summary>
    /// An accept returned <paramref name="fd"/>, not yet a connection's: numbers 0 to fd are open, and
    /// at most the connections counted are ours.
    /// </summary>
    public static void Accepted(int fd) => SawOpen(fd + 1L, pending: 1);

    // open: fds open at least; pending: of them, connections' fds not counted yet.
    private static void SawOpen(long open, int pending)
    {
        long others = open - pending - Volatile.Read(ref s_connections);
        long seen = Volatile.Read(ref s_others);
        while (others > seen)
        {
            long was = Interlocked.CompareExchange(ref s_others, others, seen);
            if (was == seen) break;
            seen = was;
        }
    }

    private static long Estimate() => Volatile.Read(ref s_others) + Volatile.Read(ref s_connections);

    /// <summary>
    /// Whether one multishot round of every acceptor fits below the reserve, by the estimate as it
    /// stands. The first time it does not since one was armed, every acceptor drops its multishot accept.
    /// </summary>
    public static bool RoomForRound()
    {
        // + 1: the number a probe may hold for a moment.
        if (Estimate() + Volatile.Read(ref s_slots) + Volatile.Read(ref s_round) + 1 < Volatile.Read(ref s_reserveFrom)) return true;
        if (Interlocked.Exchange(ref s_roomSeen, 0) == 1)
        {
            Acceptor[] all;
            lock (s_gate) all = [.. s_acceptors];
            foreach (Acceptor acceptor in all) acceptor.DropMultishot();
        }
        return false;
    }

    /// <summary>
    /// Before a multishot arm: <see cref="RoomForRound()"/>, after a probe with <paramref name="anyFd"/>
    /// has raised the estimate to what the lowest free number shows.
    /// </summary>
    public static bool RoomForRound(int anyFd)
    {
        if (!RoomForRound()) return false;
        lock (s_probeGate)
        {
            Span<int> lowest = stackalloc int[1];
            if (ProcessLimits.LowestFreeFds(anyFd, lowest) == 0) return false;
            SawOpen(lowest[0], pending: 0);
        }
        if (!RoomForRound()) return false;
        Volatile.Write(ref s_roomSeen, 1);
        Armed();
        return true;
    }

    /// <summary>
    /// Takes a slot for one single-shot accept: far from the reserve by the estimate, at once; within
    /// a margin of it, if the lowest free numbers, one for each slot armed, this one and the probe's,
    /// are all below it. False otherwise, with <paramref name="open"/>: the fds open at least (-1 at EMFILE). A slot
    /// taken is given back with <see cref="ReleaseSlot"/> once its accept has completed or will not.
    /// </summary>
    public static bool TryTakeSlot(int anyFd, out int open)
    {
        lock (s_probeGate)
        {
            long from = Volatile.Read(ref s_reserveFrom);
            int need = Volatile.Read(ref s_slots) + 2; // the slots armed, this one, and one for the probe's number
            if (Estimate() + need + (Volatile.Read(ref s_limit) - from) < from) // a margin of one reserve
            {
                open = 0;
            }
            else
            {
                Span<int> lowest = need <= 64 ? stackalloc int[need] : new int[need];
                int found = ProcessLimits.LowestFreeFds(anyFd, lowest, stopAt: from);
                open = found > 0 ? lowest[0] : -1;
                if (found < need || lowest[need - 1] >= from) return false;
                SawOpen(lowest[0], pending: 0);
            }
            Interlocked.Increment(ref s_slots);
            Armed();
            return true;
        }
    }

    public static void ReleaseSlot() => Interlocked.Decrement(ref s_slots);

    // An acceptor armed: the next pause's cap starts short again.
    private static void Armed()
    {
        if (Volatile.Read(ref s_capMs) != MinPauseMilliseconds) Volatile.Write(ref s_capMs, MinPauseMilliseconds);
    }

    /// <summary>
    /// <paramref name="acceptor"/> stops accepting until a connection closes (or the cap): logged (at
    /// most once in <see cref="LogIntervalMilliseconds"/>) with <paramref name="open"/> (fds open at
    /// least, or -1 after EMFILE). <paramref name="closes"/>: <see cref="Closes"/> as it was before the
    /// acceptor looked; a connection that closed since ends the pause at once.
    /// </summary>
    public static void Pause(Acceptor acceptor, int open, long closes, ILogger logger)
    {
        long limit = Volatile.Read(ref s_limit); // read by the arm that led here
        lock (s_gate)
        {
            if (!s_paused.Contains(acceptor)) s_paused.Add(acceptor);
            Volatile.Write(ref s_pausedCount, s_paused.Count);
        }
        // Against ConnectionClosed (count the close, then look for paused acceptors): one of the two sees the other.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref s_closes) != closes) ResumeAll();
        long now = Environment.TickCount64, last = Volatile.Read(ref s_loggedAt);
        if (now - last >= LogIntervalMilliseconds && Interlocked.CompareExchange(ref s_loggedAt, now, last) == last)
            UringLog.AcceptPausedForFds(logger, acceptor.EndPoint, open >= 0 ? open : limit, limit, Reserve(limit), MaxPauseMilliseconds);
        if (Interlocked.Exchange(ref s_capPending, 1) == 0)
        {
            int cap = Volatile.Read(ref s_capMs);
            Volatile.Write(ref s_capMs, Math.Min(cap * 2, MaxPauseMilliseconds));
            _ = Task.Delay(cap).ContinueWith(static _ =>
            {
                Volatile.Write(ref s_capPending, 0);
                ResumeAll();
            }, TaskScheduler.Default);
        }
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
}
