namespace Uring.Transport.Tests;

/// <summary>Stopping the host drains in-flight requests instead of cutting them off.</summary>
public sealed class ShutdownTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Graceful_stop_completes_every_in_flight_request(UringEngine engine)
    {
        const int Requests = 20;
        int entered = 0;
        var allEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/slow", async context =>
        {
            if (Interlocked.Increment(ref entered) == Requests) allEntered.TrySetResult();
            await allEntered.Task;
            await Task.Delay(500); // still running when the stop begins
            await TestData.WriteText(context, "done");
        }), output);
        using HttpClient client = server.CreateClient();

        Task<HttpResponseMessage>[] requests = Enumerable.Range(0, Requests).Select(_ => client.GetAsync("slow")).ToArray();
        await allEntered.Task.WaitAsync(Limits.Step);
        TimeSpan stopTook = await server.StopAsync();
        HttpResponseMessage[] responses = await Task.WhenAll(requests).WaitAsync(Limits.Step);

        output.WriteLine($"StopAsync took {stopTook.TotalMilliseconds:F0} ms");
        Assert.True(stopTook < Limits.Stop, $"StopAsync took {stopTook}.");
        foreach (HttpResponseMessage response in responses)
        {
            using (response)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("done", await response.Content.ReadAsStringAsync());
            }
        }
    }
}
