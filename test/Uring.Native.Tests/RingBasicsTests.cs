using System.Diagnostics;

namespace Uring.Native.Tests;

public sealed class RingBasicsTests
{
    [Theory, Engines]
    public void A_cancel_of_nothing_round_trips_with_ENOENT(RingKind engine)
    {
        const ulong UserData = 0x0123_4567_89ab_cdefUL;
        using var driver = RingDriver.Create(engine);

        driver.Ring.PrepareCancel(0xDEAD, UserData);
        driver.WaitFor(UserData, "the cancel");
        driver.PumpFor(20);

        var cancel = driver.Single(UserData);
        Assert.Equal(-Errno.ENOENT, cancel.Result);
        Assert.False(cancel.HasMore);
        Assert.Single(driver.Seen);
    }

    [Theory, Engines]
    public void Wake_interrupts_SubmitAndWait_without_a_user_completion(RingKind engine)
    {
        using var driver = RingDriver.Create(engine);
        var ring = driver.Ring;

        // Twice: the wake's eventfd read must re-arm itself after the first wake.
        for (int round = 1; round <= 2; round++)
        {
            bool wakeIssued = false;
            var waker = PeerThread.Start("waker", () =>
            {
                Thread.Sleep(100);
                Volatile.Write(ref wakeIssued, true);
                ring.Wake();
            });

            var clock = Stopwatch.StartNew();
            int result = ring.SubmitAndWait(1, 10_000);
            clock.Stop();
            bool returnedAfterWake = Volatile.Read(ref wakeIssued);
            waker.Join();

            Assert.True(result >= 0, $"Round {round}: SubmitAndWait returned {Errno.Describe(result)}.");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5),
                $"Round {round}: SubmitAndWait returned after {clock.ElapsedMilliseconds} ms; Wake() was called at ~100 ms.");
            Assert.True(returnedAfterWake,
                $"Round {round}: SubmitAndWait returned after {clock.ElapsedMilliseconds} ms, before Wake() was called, with nothing to complete.");
            driver.Drain();
            Assert.True(driver.Seen.Count == 0, $"Round {round}: the wake produced a user completion. {driver.History()}");
        }
    }

    [Theory, Engines]
    public void Wake_before_the_wait_is_not_lost(RingKind engine)
    {
        // The loop checks its queue, then sleeps: a producer's wake landing in between must still end that sleep.
        using var driver = RingDriver.Create(engine);
        var ring = driver.Ring;
        ring.SubmitAndWait(0, 0);

        var waker = PeerThread.Start("waker", ring.Wake);
        waker.Join();

        var clock = Stopwatch.StartNew();
        int result = ring.SubmitAndWait(1, 10_000);
        clock.Stop();

        Assert.True(result >= 0, $"SubmitAndWait returned {Errno.Describe(result)}.");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5),
            $"A Wake() issued before SubmitAndWait was lost: the wait lasted {clock.ElapsedMilliseconds} ms.");
        driver.Drain();
        Assert.True(driver.Seen.Count == 0, $"The wake produced a user completion. {driver.History()}");
    }

    [Theory, Engines]
    public void Full_submission_queue_submits_automatically_and_loses_nothing(RingKind engine)
    {
        const int Count = 100;
        const ulong Base = 0x9000;
        using var driver = RingDriver.Create(engine, entries: 4);
        Assert.Equal(4, driver.Ring.SubmissionQueueSize);

        // 100 cancels of nothing through a 4-entry SQ: every 4th prepare must submit. On io_uring the
        // 16-entry CQ overflows as well, and the kernel's overflow list must be flushed, not dropped.
        for (int i = 0; i < Count; i++)
            driver.Ring.PrepareCancel(0xDEAD, Base + (ulong)i);

        driver.PumpUntil(() => driver.Seen.Select(c => c.UserData).Distinct().Count() >= Count, $"{Count} distinct cancel completions");
        driver.PumpFor(50);

        var byUserData = driver.Seen.GroupBy(c => c.UserData).ToDictionary(g => g.Key, g => g.ToList());
        for (int i = 0; i < Count; i++)
        {
            ulong ud = Base + (ulong)i;
            Assert.True(byUserData.TryGetValue(ud, out var list) && list.Count == 1,
                $"Cancel 0x{ud:x} completed {(list?.Count ?? 0)} times. {driver.History(200)}");
            Assert.Equal(-Errno.ENOENT, list![0].Result);
        }
        Assert.Equal(Count, driver.Seen.Count);
    }

    [Theory]
    [InlineData(RingKind.IoUring, 8)]
    [InlineData(RingKind.IoUring, 64)]
    [InlineData(RingKind.IoUring, 256)]
    [InlineData(RingKind.Epoll, 8)]
    [InlineData(RingKind.Epoll, 64)]
    [InlineData(RingKind.Epoll, 256)]
    public void Completion_queue_is_four_times_the_submission_queue(RingKind engine, int entries)
    {
        using var driver = RingDriver.Create(engine, entries);

        Assert.Equal(entries, driver.Ring.SubmissionQueueSize);
        Assert.Equal(4 * driver.Ring.SubmissionQueueSize, driver.Ring.CompletionQueueSize);
    }

    [Fact]
    public void The_kernel_supports_every_operation_the_transport_requires_and_the_zero_copy_send()
    {
        using var driver = RingDriver.Create(RingKind.IoUring);
        var ring = Assert.IsType<IoUringRing>(driver.Ring);

        var missing = KernelProbe.RequiredOps.Append(IoUringOp.SendMsgZc).Where(op => !ring.Supports(op)).ToList();

        Assert.True(missing.Count == 0, $"io_uring on this kernel does not support: {string.Join(", ", missing)}.");
        Assert.Null(KernelProbe.Current.Problem);
    }

    [Fact]
    public void Io_uring_is_set_up_single_issuer_with_deferred_task_work()
    {
        using var driver = RingDriver.Create(RingKind.IoUring);
        var ring = Assert.IsType<IoUringRing>(driver.Ring);
        if ((TestKernel.Limit & RingFeatures.DeferTaskrun) == 0) return; // masked as an older kernel: set up without it

        Assert.True((ring.SetupFlags & IoUringConstants.IORING_SETUP_SINGLE_ISSUER) != 0, $"SetupFlags 0x{ring.SetupFlags:x} lacks SINGLE_ISSUER.");
        Assert.True((ring.SetupFlags & IoUringConstants.IORING_SETUP_DEFER_TASKRUN) != 0, $"SetupFlags 0x{ring.SetupFlags:x} lacks DEFER_TASKRUN.");
        uint needed = IoUringConstants.IORING_FEAT_NODROP | IoUringConstants.IORING_FEAT_FAST_POLL | IoUringConstants.IORING_FEAT_EXT_ARG;
        Assert.True((ring.KernelFeatureFlags & needed) == needed, $"Features 0x{ring.KernelFeatureFlags:x} lack NODROP, FAST_POLL or EXT_ARG.");
    }

    [Theory, Engines]
    public unsafe void Wake_after_dispose_writes_nothing_into_the_fd_number_the_next_open_gets(RingKind engine)
    {
        var driver = RingDriver.Create(engine);
        driver.Dispose();

        // The lowest free numbers go first: the wake eventfd's number is among the next ones handed out.
        var reused = new List<int>();
        try
        {
            for (int i = 0; i < 8; i++)
            {
                int fd = Libc.eventfd(0, Linux.EFD_NONBLOCK | Linux.EFD_CLOEXEC);
                Assert.True(fd >= 0, "eventfd failed");
                reused.Add(fd);
            }
            driver.Ring.Wake(); // a late waker: another thread that still holds the loop

            foreach (int fd in reused)
            {
                ulong value = 0;
                long n = (long)Libc.read(fd, &value, sizeof(ulong));
                Assert.True(n < 0 && Libc.Errno == Errno.EAGAIN,
                    $"Wake() after Dispose wrote {value} into fd {fd}, which a new owner had opened (fds {string.Join(", ", reused)}).");
            }
        }
        finally
        {
            foreach (int fd in reused) Libc.close(fd);
        }
    }
}
