using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// How a group chooses its engine and features (<see cref="EngineSelector"/>); io_uring refusals are
/// injected through the environment's set-up errno. Serving after the choice: EngineLossTests; the
/// environment variable: ConfigurationTests (a child process, since it is process-wide).
/// </summary>
public sealed class EngineSelectorTests
{
    [Theory]
    [InlineData(Errno.EPERM)]
    [InlineData(Errno.ENOSYS)]
    [InlineData(Errno.ENOMEM)]
    [InlineData(Errno.EINVAL)]
    public void Auto_falls_back_to_epoll_and_names_the_set_up_errno(int errno)
    {
        EngineSelection selection = EngineSelector.Select(new UringTransportOptions(), TestEnvironment.Suite with { SetupErrno = () => errno });

        Assert.Equal(UringEngine.Epoll, selection.Engine);
        Assert.Contains(Errno.Name(errno), selection.Reason);
        Assert.Contains(KernelProbe.Explain(errno), selection.Reason);
    }

    [Fact]
    public void An_EPERM_reason_names_the_sysctl_and_what_else_blocks_io_uring()
    {
        EngineSelection selection = EngineSelector.Select(new UringTransportOptions(), TestEnvironment.Suite with { SetupErrno = () => Errno.EPERM });

        Assert.Contains("kernel.io_uring_disabled", selection.Reason);
        if (File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim() == "0")
            Assert.Contains("seccomp", selection.Reason);
    }

    [Fact]
    public void Auto_picks_io_uring_on_this_kernel_with_the_features_the_test_kernel_allows()
    {
        EngineSelection selection = EngineSelector.Select(new UringTransportOptions(), TestEnvironment.Suite);

        Assert.True(selection.Engine == UringEngine.IoUring, $"Auto chose {selection.Engine}: {selection.Reason}");
        Assert.Equal(TestKernel.Limit, selection.Features);
        Assert.StartsWith("io_uring available", selection.Reason);
    }

    [Fact]
    public void Epoll_asked_for_is_chosen_without_probing()
    {
        EngineSelection selection = EngineSelector.Select(new UringTransportOptions { Engine = UringEngine.Epoll },
            TestEnvironment.Suite with { SetupErrno = () => throw new InvalidOperationException("probed") });

        Assert.Equal(UringEngine.Epoll, selection.Engine);
        Assert.Equal("epoll forced by Engine=Epoll in options", selection.Reason);
    }

    [Fact]
    public void Disabled_kernel_features_are_withheld_from_the_rings_and_the_log_line()
    {
        var options = new UringTransportOptions { DisabledKernelFeatures = " multishotrecv,SendZc " };

        EngineSelection selection = EngineSelector.Select(options, TestEnvironment.Suite with { FeatureMask = RingFeatures.All });

        Assert.Equal(RingFeatures.All & ~(RingFeatures.MultishotRecv | RingFeatures.SendZc), selection.Features);
        string features = selection.Reason[selection.Reason.IndexOf("features ", StringComparison.Ordinal)..];
        Assert.DoesNotContain("MultishotRecv", features);
        Assert.DoesNotContain("SendZc,", features);
        Assert.Contains("MultishotAccept", features);
    }

    [Theory]
    [InlineData("Multishot")]
    [InlineData("All")]
    [InlineData("Linux6_0")]
    [InlineData("4")]
    [InlineData("None")]
    public void A_name_that_is_not_one_kernel_feature_is_refused_with_the_known_names(string name)
    {
        var error = Assert.Throws<ArgumentException>(() => EngineSelector.ParseFeatures("SendZc," + name));

        Assert.Contains($"'{name}'", error.Message);
        Assert.Contains("MultishotRecv", error.Message);
    }

    [Fact]
    public void No_names_withhold_nothing() => Assert.Equal(RingFeatures.None, EngineSelector.ParseFeatures(" , "));
}

/// <summary>Tests that set a process-wide environment variable: they run alone, after the parallel tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    public const string Name = "Process environment";
}

[Collection(ProcessEnvironmentCollection.Name)]
public sealed class EngineVariableTests
{
    [Theory]
    [InlineData("epoll", UringEngine.IoUring, UringEngine.Epoll)]
    [InlineData(" EPOLL ", UringEngine.Auto, UringEngine.Epoll)]
    [InlineData("io_uring", UringEngine.Epoll, UringEngine.IoUring)]
    [InlineData("auto", UringEngine.Epoll, UringEngine.IoUring)]
    public void The_variable_overrides_the_configured_engine_and_the_reason_names_it(string value, UringEngine configured, UringEngine expected)
    {
        EngineSelection selection = WithVariable(value, () => EngineSelector.Select(new UringTransportOptions { Engine = configured }, TestEnvironment.Suite));

        Assert.Equal(expected, selection.Engine);
        Assert.Contains($"{EngineSelector.EnvironmentVariable}={value.Trim()}", selection.Reason);
    }

    [Fact]
    public void An_unknown_value_is_refused_naming_the_variable_and_the_values()
    {
        var error = Assert.Throws<ArgumentException>(() => WithVariable("uring2", () => EngineSelector.Select(new UringTransportOptions(), TestEnvironment.Suite)));

        Assert.Contains($"{EngineSelector.EnvironmentVariable}='uring2'", error.Message);
        Assert.Contains("iouring, epoll or auto", error.Message);
    }

    private static T WithVariable<T>(string value, Func<T> run)
    {
        string? saved = Environment.GetEnvironmentVariable(EngineSelector.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(EngineSelector.EnvironmentVariable, value);
            return run();
        }
        finally
        {
            Environment.SetEnvironmentVariable(EngineSelector.EnvironmentVariable, saved);
        }
    }
}
