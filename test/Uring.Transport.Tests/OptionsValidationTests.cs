using Microsoft.Extensions.Options;
using Uring.Transport;

namespace Uring.Transport.Tests;

/// <summary>Bad transport options stop the host from starting, with a message that names the option.</summary>
public sealed class OptionsValidationTests(ITestOutputHelper output)
{
    private static readonly Dictionary<string, Action<UringTransportOptions>> s_badOptions = new()
    {
        ["RingCount"] = o => o.RingCount = 0,
        ["RingEntries"] = o => o.RingEntries = 3,
        ["ProvidedBufferSize"] = o => o.ProvidedBufferSize = 10,
        ["ProvidedBufferCount"] = o => o.ProvidedBufferCount = 3,
        ["Backlog"] = o => o.Backlog = 0,
        ["MaxReadBufferSize"] = o => o.MaxReadBufferSize = -1,
        ["LoopAffinity"] = o => o.LoopAffinity = (LoopAffinity)7,
        ["ListenerSteering"] = o => o.ListenerSteering = (ListenerSteering)5,
        ["ZeroCopySendThreshold"] = o => o.ZeroCopySendThreshold = -1,
        ["DisabledKernelFeatures"] = o => o.DisabledKernelFeatures = "MultishotRecv,Turbo",
    };

    public static TheoryData<UringEngine, string> EnginesAndBadOptions()
    {
        var data = new TheoryData<UringEngine, string>();
        foreach (UringEngine engine in new[] { UringEngine.IoUring, UringEngine.Epoll })
        {
            foreach (string option in s_badOptions.Keys)
                data.Add(engine, option);
        }
        return data;
    }

    [Theory, MemberData(nameof(EnginesAndBadOptions))]
    public async Task Starting_the_host_with_a_bad_option_fails_naming_the_option(UringEngine engine, string option)
    {
        Exception thrown = await Assert.ThrowsAnyAsync<Exception>(() => TestServer.StartAsync(
            engine, app => { }, output, new ServerSetup { Transport = s_badOptions[option] }));

        output.WriteLine(thrown.ToString());
        OptionsValidationException validation = Assert.IsType<OptionsValidationException>(Unwrap(thrown));
        Assert.Equal(typeof(UringTransportOptions), validation.OptionsType);
        Assert.Contains("UringTransportOptions." + option, validation.Message);
    }

    [Fact]
    public void Defaults_are_valid()
    {
        ValidateOptionsResult result = Validate(_ => { });

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Theory]
    [InlineData("RingCount")]
    [InlineData("RingEntries")]
    [InlineData("ProvidedBufferSize")]
    [InlineData("ProvidedBufferCount")]
    [InlineData("Backlog")]
    [InlineData("MaxReadBufferSize")]
    [InlineData("DisabledKernelFeatures")]
    public void Validator_names_the_bad_option(string option)
    {
        ValidateOptionsResult result = Validate(s_badOptions[option]);

        Assert.True(result.Failed);
        string failure = Assert.Single(result.Failures!);
        Assert.StartsWith($"UringTransportOptions.{option} ", failure);
    }

    public static TheoryData<string, Action<UringTransportOptions>> OutOfRange() => new()
    {
        { "Engine", o => o.Engine = (UringEngine)7 },
        { "RingCount", o => o.RingCount = -1 },
        { "RingCount", o => o.RingCount = 1025 },
        { "RingEntries", o => o.RingEntries = 4 },
        { "RingEntries", o => o.RingEntries = 65536 },
        { "RingEntries", o => o.RingEntries = 100 },
        { "ProvidedBufferSize", o => o.ProvidedBufferSize = 511 },
        { "ProvidedBufferSize", o => o.ProvidedBufferSize = 1024 * 1024 + 1 },
        { "ProvidedBufferCount", o => o.ProvidedBufferCount = 0 },
        { "ProvidedBufferCount", o => o.ProvidedBufferCount = 65536 },
        { "Backlog", o => o.Backlog = -5 },
        { "MaxWriteBufferSize", o => o.MaxWriteBufferSize = -1 },
    };

    [Theory, MemberData(nameof(OutOfRange))]
    public void Validator_rejects_values_just_outside_the_documented_ranges(string option, Action<UringTransportOptions> configure)
    {
        ValidateOptionsResult result = Validate(configure);

        string failure = Assert.Single(result.Failures ?? []);
        Assert.StartsWith($"UringTransportOptions.{option} ", failure);
    }

    public static TheoryData<Action<UringTransportOptions>> Boundaries() => new()
    {
        o => o.Engine = UringEngine.Auto,
        o => o.Engine = UringEngine.IoUring,
        o => o.Engine = UringEngine.Epoll,
        o => o.RingCount = 1,
        o => o.RingCount = 1024,
        o => o.RingEntries = 8,
        o => o.RingEntries = 32768,
        o => o.ProvidedBufferSize = 512,
        o => o.ProvidedBufferSize = 1024 * 1024,
        o => o.ProvidedBufferCount = 1,
        o => o.ProvidedBufferCount = 32768,
        o => o.Backlog = 1,
        o => o.MaxReadBufferSize = null,
        o => o.MaxReadBufferSize = 0,
        o => o.MaxWriteBufferSize = null,
        o => o.MaxWriteBufferSize = 0,
    };

    [Theory, MemberData(nameof(Boundaries))]
    public void Validator_accepts_the_ends_of_every_documented_range(Action<UringTransportOptions> configure)
    {
        ValidateOptionsResult result = Validate(configure);

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Fact]
    public void Validator_reports_every_bad_option_at_once()
    {
        ValidateOptionsResult result = Validate(o =>
        {
            foreach (Action<UringTransportOptions> bad in s_badOptions.Values) bad(o);
        });

        Assert.True(result.Failed);
        Assert.Equal(s_badOptions.Count, result.Failures!.Count());
        foreach (string option in s_badOptions.Keys)
            Assert.Contains(result.Failures!, f => f.StartsWith($"UringTransportOptions.{option} ", StringComparison.Ordinal));
    }

    private static ValidateOptionsResult Validate(Action<UringTransportOptions> configure)
    {
        var options = new UringTransportOptions();
        configure(options);
        return new UringTransportOptionsValidator().Validate(Options.DefaultName, options);
    }

    /// <summary>The host may wrap the validation failure (AggregateException from start-up validation).</summary>
    private static Exception Unwrap(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } aggregate)
            e = aggregate.InnerExceptions[0];
        return e;
    }
}
