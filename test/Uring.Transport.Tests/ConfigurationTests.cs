using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Uring.Transport.Tests;

/// <summary>
/// UseUringTransport() binds UringTransportOptions from the "Uring" configuration section
/// (appsettings.json, environment variables); values set in code win; a bad value fails at
/// start-up naming its key.
/// </summary>
[Collection(ChildProcessCollection.Name)] // the environment variable test starts a child process
public sealed class ConfigurationTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _contentRoot = Directory.CreateTempSubdirectory("uring-config-").FullName;

    public void Dispose() => Directory.Delete(_contentRoot, recursive: true);

    [Fact]
    public async Task Options_come_from_appsettings_json_and_the_server_runs_with_them()
    {
        await using WebApplication app = Build("""{ "Uring": { "Engine": "Epoll", "RingCount": 1, "Backlog": 77 } }""", _ => { });
        UringTransportOptions options = app.Services.GetRequiredService<IOptions<UringTransportOptions>>().Value;
        Assert.Equal((UringEngine.Epoll, 1, 77), (options.Engine, options.RingCount, options.Backlog));

        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        Assert.Equal("Epoll", await client.GetStringAsync("/engine"));
        await app.StopAsync();
    }

    [Fact]
    public void Values_set_in_code_win_over_configuration_whether_registered_before_or_after()
    {
        using WebApplication app = Build("""{ "Uring": { "Engine": "Epoll", "RingCount": 3, "Backlog": 77 } }""", builder =>
        {
            builder.Services.Configure<UringTransportOptions>(o => o.RingCount = 1); // before UseUringTransport
        }, o => o.Backlog = 5);
        UringTransportOptions options = app.Services.GetRequiredService<IOptions<UringTransportOptions>>().Value;
        Assert.Equal((UringEngine.Epoll, 1, 5), (options.Engine, options.RingCount, options.Backlog));
    }

    [Theory]
    [InlineData("""{ "Uring": { "RingCount": "many" } }""", "Uring:RingCount")]
    [InlineData("""{ "Uring": { "RingEntries": 100 } }""", "Uring:RingEntries")]
    [InlineData("""{ "Uring": { "Engine": "Fast" } }""", "Uring:Engine")]
    [InlineData("""{ "Uring": { "RingCont": 2 } }""", "RingCont")]
    public async Task A_bad_value_in_configuration_fails_at_start_up_naming_the_key(string json, string key)
    {
        // Kestrel's server (and so the transport and its options) is created when the app is built.
        Exception thrown = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using WebApplication app = Build(json, _ => { });
            await app.StartAsync();
        });
        output.WriteLine(thrown.ToString());
        Assert.Contains(key, Messages(thrown));
    }

    [Fact]
    public async Task An_environment_variable_reaches_the_options_and_a_bad_one_stops_the_process_naming_it()
    {
        using ChildServerProcess child = ChildServerProcess.Launch(UringEngine.Epoll, output,
            environment: new Dictionary<string, string> { ["Uring__RingEntries"] = "100" });
        int exitCode = await child.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, exitCode);
        Assert.Contains(child.Lines, l => l.Contains("Uring:RingEntries", StringComparison.Ordinal) && l.Contains("100", StringComparison.Ordinal));
        Assert.DoesNotContain(child.Lines, l => l.StartsWith("READY ", StringComparison.Ordinal));
    }

    private WebApplication Build(string appsettings, Action<WebApplicationBuilder> configure, Action<UringTransportOptions>? inCode = null)
    {
        File.WriteAllText(Path.Combine(_contentRoot, "appsettings.json"), appsettings);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = _contentRoot });
        builder.Logging.ClearProviders();
        configure(builder);
        if (inCode is null) builder.WebHost.UseUringTransport();
        else builder.WebHost.UseUringTransport(inCode);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        WebApplication app = builder.Build();
        app.MapGet("/engine", context => TestData.WriteText(context, context.Features.Get<IUringConnectionFeature>()?.Engine.ToString() ?? "none"));
        return app;
    }

    private static string Messages(Exception e)
    {
        var text = new StringBuilder();
        for (Exception? x = e; x is not null; x = x.InnerException) text.AppendLine(x.Message);
        if (e is AggregateException aggregate)
            foreach (Exception inner in aggregate.InnerExceptions) text.AppendLine(Messages(inner));
        return text.ToString();
    }
}
