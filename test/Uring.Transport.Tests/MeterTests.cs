using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// The per-loop instruments of the "Uring.Transport" meter, read as any MeterListener (dotnet-counters,
/// OpenTelemetry) reads them. They sum over every loop group in the process: these tests run alone,
/// and this server has six loops while the groups other tests leave (HttpClient's, two loops)
/// have indices 0-1, so the checks look at loops 2-5.
/// </summary>
[Collection(MeterCollection.Name)]
public sealed class MeterTests(ITestOutputHelper output)
{
    private const int Loops = 6, Own = TestServer.RingCount; // loop indices from Own up are ours alone
    private const int Connections = 24;

    private static readonly string[] Moving = ["uring.loop.enters", "uring.loop.submitted", "uring.loop.completions", "uring.loop.batches", "uring.loop.connections.accepted"];

    [Theory, Engines]
    public async Task Loop_counters_move_with_traffic_and_stand_still_on_an_idle_loop(UringEngine engine)
    {
        await using TestServer server = await TestServer.StartAsync(engine, app =>
        {
            app.Map("/abort", (HttpContext context) => context.Abort());
            TestData.MapPlaintext(app);
        }, output, new ServerSetup { Transport = o => o.RingCount = Loops });
        string tag = engine == UringEngine.IoUring ? "io_uring" : "epoll";

        // Started, never given a connection: once the loops have armed what they arm at start-up
        // (a few enters each), nothing moves on loops 2-5.
        var idleStart = Read(tag);
        for (int settle = 0; settle < 20; settle++)
        {
            await Task.Delay(100);
            var next = Read(tag);
            bool same = next.All(p => idleStart[p.Key] == p.Value);
            idleStart = next;
            if (same) break;
        }
        await Task.Delay(300);
        var idleEnd = Read(tag);
        foreach (string name in Moving.Append("uring.loop.wakeups"))
            Assert.True(idleEnd[(name, "")] == idleStart[(name, "")], $"{name} moved on idle loops: {idleStart[(name, "")]} -> {idleEnd[(name, "")]}");
        Assert.Equal(0, idleEnd[("uring.loop.connections.accepted", "")]);

        // Requests on fresh connections, spread round-robin over the six loops; some end in a server
        // abort, some in a reset by the peer.
        for (int i = 0; i < Connections; i++)
        {
            using RawConnection connection = await server.ConnectRawAsync();
            switch (i % 3)
            {
                case 0:
                    await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
                    Assert.Equal(200, (await connection.ReadResponseAsync()).StatusCode);
                    break;
                case 1:
                    await connection.SendAsync(RawConnection.Request("GET", "/abort"));
                    await connection.ReadEndAsync(); // the server's abort ends the connection
                    break;
                default:
                    await connection.SendAsync(RawConnection.Request("GET", "/plaintext"));
                    Assert.Equal(200, (await connection.ReadResponseAsync()).StatusCode);
                    connection.Reset(); // RST while the server waits for the next request
                    break;
            }
        }
        Assert.True(await Eventually.HoldsAsync(() => server.Group.Loops.Sum(l => l.Members.Connections) == 0, Limits.Stop),
            "Connections stayed open after the traffic.");
        await Task.Delay(200); // the last closes' thread-pool tails (Kestrel's dispose) are done
        var busy = Read(tag);
        foreach (var pair in busy.OrderBy(p => p.Key.Name)) output.WriteLine($"{pair.Key.Name} {pair.Key.Error}: {idleEnd[pair.Key]} -> {pair.Value}");

        foreach (string name in Moving)
            Assert.True(busy[(name, "")] > idleEnd[(name, "")], $"{name} did not move with traffic on loops {Own}-{Loops - 1}.");
        // Round-robin gives each loop a share: loops 2-5 took 4 of every 6 connections.
        Assert.InRange(busy[("uring.loop.connections.accepted", "")], Connections / 3, Connections);
        Assert.True(busy[("uring.loop.connections.failed", "aborted")] > 0, "No server abort counted.");
        Assert.True(busy[("uring.loop.connections.failed", "reset")] > 0, "No peer reset counted.");
        Assert.Equal(0, busy[("uring.loop.connections.failed", "error")]);
        Assert.True(busy[("uring.loop.completions", "")] >= busy[("uring.loop.batches", "")], "fewer completions than batches of them");

        // Idle again: the counters stand still.
        await Task.Delay(300);
        var after = Read(tag);
        foreach (string name in Moving.Append("uring.loop.wakeups"))
            Assert.True(after[(name, "")] == busy[(name, "")], $"{name} moved on idle loops after the traffic: {busy[(name, "")]} -> {after[(name, "")]}");
    }

    /// <summary>One observation of every uring.loop.* instrument: sums over loops Own.. of this engine, by (name, error.type).</summary>
    private static Dictionary<(string Name, string Error), long> Read(string engine)
    {
        var values = new Dictionary<(string Name, string Error), long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == UringMetrics.MeterName && instrument.Name.StartsWith("uring.loop.", StringComparison.Ordinal))
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? tagEngine = null, error = "";
            int index = -1;
            foreach (var t in tags)
            {
                if (t.Key == "uring.engine") tagEngine = (string?)t.Value;
                else if (t.Key == "uring.loop.index") index = (int)t.Value!;
                else if (t.Key == "error.type") error = (string)t.Value!;
            }
            if (tagEngine != engine || index < Own) return;
            values.TryGetValue((instrument.Name, error), out long sum);
            values[(instrument.Name, error)] = sum + value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        foreach (string name in Moving.Append("uring.loop.wakeups").Append("uring.loop.no_buffers"))
            values.TryAdd((name, ""), 0);
        foreach (string error in new[] { "reset", "error", "aborted" })
            values.TryAdd(("uring.loop.connections.failed", error), 0);
        return values;
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MeterCollection
{
    public const string Name = "Meter (runs alone)";
}
