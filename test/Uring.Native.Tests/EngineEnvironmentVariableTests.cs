namespace Uring.Native.Tests;

/// <summary>Tests that change the process environment: they never run alongside tests that create rings.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    public const string Name = "Process environment";
}

[Collection(ProcessEnvironmentCollection.Name)]
public sealed class EngineEnvironmentVariableTests
{
    [Theory]
    [InlineData("epoll", RingEngine.IoUring, RingEngine.Epoll)]
    [InlineData("epoll", RingEngine.Auto, RingEngine.Epoll)]
    [InlineData("iouring", RingEngine.Epoll, RingEngine.IoUring)]
    public void Environment_variable_overrides_the_configured_engine(string value, RingEngine configured, RingEngine expected)
    {
        string? saved = Environment.GetEnvironmentVariable(RingOptions.EngineEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(RingOptions.EngineEnvironmentVariable, value);
            var options = new RingOptions { Engine = configured };

            var selection = RingFactory.Select(options);
            Assert.Equal(expected, selection.Engine);
            Assert.Contains(RingOptions.EngineEnvironmentVariable, selection.Reason);

            using var ring = RingFactory.Create(options);
            Assert.Equal(expected, ring.Engine);
        }
        finally
        {
            Environment.SetEnvironmentVariable(RingOptions.EngineEnvironmentVariable, saved);
        }
    }
}
