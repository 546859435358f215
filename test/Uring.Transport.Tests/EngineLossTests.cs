using Microsoft.Extensions.Logging;

namespace Uring.Transport.Tests;

/// <summary>
/// io_uring refused at start-up (a seccomp profile, kernel.io_uring_disabled: EPERM, injected through
/// the detection hook). The engine is what these tests vary, so they ask for Auto and IoUring
/// rather than running once per engine.
/// </summary>
public sealed class EngineLossTests(ITestOutputHelper output)
{
    private static readonly ServerSetup s_refused = new() { Environment = TestEnvironment.Suite with { SetupErrno = () => Errno.EPERM } };

    [Fact]
    public async Task Auto_serves_on_epoll_when_io_uring_setup_is_refused_and_logs_why()
    {
        await using var server = await TestServer.StartAsync(UringEngine.Auto, app => app.MapGet("/engine", context =>
            TestData.WriteText(context, context.Features.Get<IUringConnectionFeature>()?.Engine.ToString() ?? "none")), output, s_refused);
        using HttpClient client = server.CreateClient();

        Assert.Equal("Epoll", await client.GetStringAsync("engine"));
        LogCollector.Entry selected = Assert.Single(server.Logs.Entries, e => e.Category == "Uring.Transport" && e.EventId.Id == 1);
        output.WriteLine(selected.ToString());
        Assert.Equal(LogLevel.Information, selected.Level);
        Assert.Contains("Epoll", selected.Message);
        Assert.Contains("EPERM", selected.Message);
    }

    [Fact]
    public async Task IoUring_fails_start_up_with_a_message_naming_the_errno_and_the_option_when_setup_is_refused()
    {
        Exception thrown = await Assert.ThrowsAnyAsync<Exception>(() => TestServer.StartAsync(UringEngine.IoUring, TestData.MapPlaintext, output, s_refused));

        output.WriteLine(thrown.ToString());
        string messages = string.Join(" | ", Chain(thrown).Select(e => e.Message));
        Assert.Contains("EPERM", messages);
        Assert.Contains("UringTransportOptions.Engine", messages);
    }

    private static IEnumerable<Exception> Chain(Exception? e)
    {
        for (; e is not null; e = e.InnerException) yield return e;
    }
}
