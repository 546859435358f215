using System.Net.Http;
using Uring.Perf.App;

namespace Uring.Apps.Tests;

/// <summary>
/// The sample app (perf/Uring.Perf.App, what <c>./build.sh run</c> starts) on the engine under
/// test; the null row is Kestrel's Sockets transport.
/// </summary>
public sealed class SampleAppTests(ITestOutputHelper output)
{
    [Theory, Engines, InlineData(null)]
    public async Task First_page_is_text_naming_the_engine_that_serves_the_connection_and_the_loop_count(UringEngine? engine)
    {
        await using var app = await AppHost.StartAsync(hook => SampleServer.Build(
            new SampleSettings(engine, "http://127.0.0.1:0", Rings: 2), hook), output);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = app.Address(), Timeout = Limits.Step };

        using HttpResponseMessage response = await client.GetAsync("/");
        string page = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        if (engine is UringEngine e)
        {
            Assert.Contains($"This connection: Uring.Transport, engine {e}, I/O loop ", page);
            Assert.Contains("I/O loops: 2\n", page.ReplaceLineEndings("\n"));
            Assert.Contains("Engine chosen, kernel features: ", page);
        }
        else
        {
            Assert.Contains("This connection: Kestrel's Sockets transport", page);
            Assert.DoesNotContain("I/O loops", page);
        }
        Assert.Contains("GET /plaintext", page);
    }
}
