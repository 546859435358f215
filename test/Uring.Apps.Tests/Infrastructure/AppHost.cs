using Microsoft.Extensions.Logging;

namespace Uring.Apps.Tests.Infrastructure;

/// <summary>
/// A started app (the proxy, the gRPC service, a backend) with its log collected. Starting and
/// stopping are time-bounded; disposing stops it and asserts that nothing was logged as an error.
/// </summary>
internal sealed class AppHost : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private bool _stopped;

    private AppHost(WebApplication app, LogCollector logs, ITestOutputHelper output)
    {
        App = app;
        Logs = logs;
        _output = output;
    }

    public WebApplication App { get; }

    public LogCollector Logs { get; }

    /// <summary>The bound address of the endpoint with <paramref name="scheme"/>, e.g. http://127.0.0.1:40123/.</summary>
    public Uri Address(string scheme = "http") =>
        new(App.Urls.Single(u => u.StartsWith(scheme + "://", StringComparison.Ordinal)).TrimEnd('/') + "/");

    /// <summary>Routes the builder's log to a collector: warnings and above, and the transport's own entries.</summary>
    public static LogCollector CollectLogs(WebApplicationBuilder builder)
    {
        var logs = new LogCollector();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter((string?)null, LogLevel.Warning);
        builder.Logging.AddFilter("Uring.Transport", LogLevel.Information);
        builder.Logging.AddProvider(logs);
        return logs;
    }

    /// <summary>Builds the app with <paramref name="build"/> (given the log hook) and starts it.</summary>
    public static async Task<AppHost> StartAsync(Func<Action<WebApplicationBuilder>, WebApplication> build, ITestOutputHelper output)
    {
        LogCollector? logs = null;
        WebApplication app = build(builder =>
        {
            logs = CollectLogs(builder);
            // As on the test kernel: the transport's operator setting, which its client side shares with
            // the server's loops (URING_TEST_KERNEL, see TestKernel).
            if (TestKernel.DisabledFeatures is { } disabled) builder.Configuration["Uring:DisabledKernelFeatures"] = disabled;
        });
        var host = new AppHost(app, logs ?? throw new InvalidOperationException("the app's builder was not handed the log hook"), output);
        try
        {
            using var cts = new CancellationTokenSource(Limits.Step);
            await app.StartAsync(cts.Token).WaitAsync(Limits.Step);
            return host;
        }
        catch
        {
            await host.DisposeAppAsync();
            throw;
        }
    }

    /// <summary>A backend: Kestrel on its Sockets transport at 127.0.0.1, port 0, with <paramref name="map"/>'s endpoints.</summary>
    public static Task<AppHost> StartBackendAsync(Action<WebApplication> map, ITestOutputHelper output) => StartAsync(hook =>
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        hook(builder);
        var app = builder.Build();
        map(app);
        return app;
    }, output);

    /// <summary>Stops the app gracefully (Kestrel drains for up to <see cref="Limits.Stop"/>); fails if the stop does not return in time.</summary>
    public async Task StopAsync()
    {
        if (_stopped) return;
        _stopped = true;
        using var cts = new CancellationTokenSource(Limits.Stop);
        Task stop = App.StopAsync(cts.Token);
        if (await Task.WhenAny(stop, Task.Delay(Limits.Stop + TimeSpan.FromSeconds(5))) != stop)
            Assert.Fail($"StopAsync did not return within {(Limits.Stop + TimeSpan.FromSeconds(5)).TotalSeconds} s.");
        await stop;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
            IReadOnlyList<LogCollector.Entry> errors = Logs.Errors();
            Assert.True(errors.Count == 0,
                $"The app logged {errors.Count} error(s):{Environment.NewLine}{string.Join(Environment.NewLine, errors)}");
        }
        finally
        {
            await DisposeAppAsync();
        }
    }

    private async Task DisposeAppAsync()
    {
        foreach (LogCollector.Entry entry in Logs.Entries.Take(200))
        {
            try
            {
                _output.WriteLine(entry.ToString());
            }
            catch (InvalidOperationException)
            {
                break; // the test has already finished
            }
        }
        ValueTask dispose = App.DisposeAsync();
        if (!dispose.IsCompleted)
            await dispose.AsTask().WaitAsync(Limits.Stop);
    }
}
