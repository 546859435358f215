namespace Uring.Native.Tests;

public sealed class EngineSelectionTests
{
    [Theory]
    [InlineData(Errno.EPERM)]
    [InlineData(Errno.ENOSYS)]
    [InlineData(Errno.ENOMEM)]
    [InlineData(Errno.EINVAL)]
    public void Auto_falls_back_to_epoll_and_names_the_setup_errno(int errno)
    {
        var options = new RingOptions { Engine = RingEngine.Auto, InjectSetupErrno = () => errno };

        var selection = RingFactory.Select(options);
        Assert.Equal(RingEngine.Epoll, selection.Engine);
        Assert.Contains(Errno.Name(errno), selection.Reason);

        using var ring = RingFactory.Create(options);
        Assert.Equal(RingEngine.Epoll, ring.Engine);
    }

    [Fact]
    public void EPERM_reason_reports_the_io_uring_disabled_sysctl()
    {
        var selection = RingFactory.Select(new RingOptions { Engine = RingEngine.Auto, InjectSetupErrno = () => Errno.EPERM });

        Assert.Contains("EPERM", selection.Reason);
        Assert.Contains("io_uring_disabled", selection.Reason);
    }

    [Fact]
    public void Demanding_io_uring_when_setup_is_refused_throws_with_the_errno()
    {
        var options = new RingOptions { Engine = RingEngine.IoUring, InjectSetupErrno = () => Errno.EPERM };

        var error = Assert.Throws<RingException>(() => RingFactory.Create(options));
        Assert.Contains("EPERM", error.Message);
        Assert.Equal(Errno.EPERM, error.Errno);
    }

    [Fact]
    public void Auto_selects_io_uring_on_this_kernel()
    {
        var selection = RingFactory.Select(new RingOptions { Engine = RingEngine.Auto });
        Assert.False(string.IsNullOrWhiteSpace(selection.Reason));

        string disabled = File.Exists("/proc/sys/kernel/io_uring_disabled")
            ? File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim()
            : "0";
        if (disabled != "0")
            return; // io_uring is switched off on this machine: nothing more to check (xunit 2 has no dynamic skip)

        Assert.True(selection.Engine == RingEngine.IoUring, $"Auto chose {selection.Engine}: {selection.Reason}");
        using var ring = RingFactory.Create(new RingOptions { Engine = RingEngine.Auto });
        Assert.Equal(RingEngine.IoUring, ring.Engine);
    }

    [Fact]
    public void Io_uring_is_set_up_single_issuer_with_deferred_task_work()
    {
        using var driver = RingDriver.Create(RingEngine.IoUring);
        var ring = Assert.IsType<IoUringRing>(driver.Ring);

        Assert.True((ring.SetupFlags & IoUringConstants.IORING_SETUP_SINGLE_ISSUER) != 0, $"SetupFlags 0x{ring.SetupFlags:x} lacks SINGLE_ISSUER.");
        Assert.True((ring.SetupFlags & IoUringConstants.IORING_SETUP_DEFER_TASKRUN) != 0, $"SetupFlags 0x{ring.SetupFlags:x} lacks DEFER_TASKRUN.");
        uint needed = IoUringConstants.IORING_FEAT_NODROP | IoUringConstants.IORING_FEAT_FAST_POLL | IoUringConstants.IORING_FEAT_EXT_ARG;
        Assert.True((ring.KernelFeatureFlags & needed) == needed, $"Features 0x{ring.KernelFeatureFlags:x} lack NODROP, FAST_POLL or EXT_ARG.");
    }
}
