using Microsoft.AspNetCore.Connections;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>How connections end: Connection: close, client FIN, client RST, app Abort(), client gone mid-request.</summary>
public sealed class ConnectionLifecycleTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Connection_close_gets_the_response_then_a_FIN(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);
        using RawConnection connection = await server.ConnectRawAsync();

        await connection.SendAsync(RawConnection.Request("GET", "/plaintext", "Connection: close"));
        RawResponse response = await connection.ReadResponseAsync();

        Assert.Equal(200, response.StatusCode);
        Assert.Equal("Hello, World!", response.BodyText);
        Assert.Equal("close", response.Header("Connection"), ignoreCase: true);
        Assert.Equal("FIN", await connection.ReadEndAsync());
    }

    [Theory, Engines]
    public async Task Client_FIN_before_any_request_closes_the_connection_and_the_server_keeps_serving(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);

        using (RawConnection connection = await server.ConnectRawAsync())
        {
            connection.Socket.Shutdown(SocketShutdown.Send);
            Assert.Equal("FIN", await connection.ReadEndAsync().WaitAsync(TimeSpan.FromSeconds(5)));
        }

        using HttpClient client = server.CreateClient();
        Assert.Equal("Hello, World!", await client.GetStringAsync("plaintext"));
    }

    [Theory, Engines, InlineData(null)] // null: Kestrel's Sockets transport, the reference
    public async Task Client_RST_mid_body_gives_the_app_ConnectionResetException_like_Kestrel_Sockets(UringEngine? engine)
    {
        var readSome = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var outcome = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, app => app.MapPost("/upload", async context =>
        {
            var buffer = new byte[16 * 1024];
            try
            {
                while (await context.Request.Body.ReadAsync(buffer) > 0)
                    readSome.TrySetResult();
                outcome.TrySetResult(null);
            }
            catch (Exception e)
            {
                outcome.TrySetResult(e);
            }
        }), output);
        // Kestrel itself, on the Sockets transport too, may log this at Error after the app's read failed.
        server.Logs.Allow(e => e.EventId.Name == "RequestBodyDrainBodyReaderInvalidState");
        using RawConnection connection = await server.ConnectRawAsync();

        await connection.SendAsync(RawConnection.Request("POST", "/upload", "Content-Length: 1048576"));
        await connection.SendAsync(TestData.Random(64 * 1024, seed: 9));
        await readSome.Task.WaitAsync(Limits.Step);
        connection.Reset();

        Exception? seen = await outcome.Task.WaitAsync(Limits.Step);
        Assert.True(seen is not null, "The app read the body to its end although the client reset mid-body.");
        output.WriteLine($"{Chain(seen)}: {seen}");
        // Kestrel's Sockets transport (the null row) gives the app ConnectionResetException itself,
        // wrapping a SocketException with ConnectionReset: application code catches and inspects these.
        Assert.IsType<ConnectionResetException>(seen);
        var inner = Assert.IsType<SocketException>(seen.InnerException);
        Assert.Equal(SocketError.ConnectionReset, inner.SocketErrorCode);
    }

    [Theory, Engines, InlineData(null)] // null: Kestrel's Sockets transport, the reference
    public async Task Client_RST_while_the_app_streams_a_response_ends_the_app_without_errors_logged(UringEngine? engine)
    {
        var wroteSome = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var outcome = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/stream", async context =>
        {
            var chunk = new byte[64 * 1024];
            try
            {
                while (!context.RequestAborted.IsCancellationRequested)
                {
                    await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                    wroteSome.TrySetResult();
                }
                outcome.TrySetResult(null);
            }
            catch (Exception e)
            {
                outcome.TrySetResult(e);
            }
        }), output);
        using RawConnection connection = await server.ConnectRawAsync();

        await connection.SendAsync(RawConnection.Request("GET", "/stream"));
        await wroteSome.Task.WaitAsync(Limits.Step);
        Assert.True(await connection.Socket.ReceiveAsync(new byte[1024], SocketFlags.None, Limits.StepToken()) > 0);
        connection.Reset();

        // The app's loop ends (RequestAborted or a failed write); the disposal then checks that neither
        // the transport nor Kestrel logged an error: a peer that went away is not a server fault.
        Exception? seen = await outcome.Task.WaitAsync(Limits.Step);
        output.WriteLine(seen is null ? "RequestAborted fired" : $"{Chain(seen)}: {seen.Message}");
    }

    [Theory]
    [InlineData(UringEngine.IoUring, true)]
    [InlineData(UringEngine.IoUring, false)]
    [InlineData(UringEngine.Epoll, true)]
    [InlineData(UringEngine.Epoll, false)]
    public async Task Accepted_connections_have_TCP_NODELAY_as_the_NoDelay_option_says(UringEngine engine, bool noDelay)
    {
        var seen = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output, new ServerSetup
        {
            Transport = o => o.NoDelay = noDelay,
            Listen = lo => lo.Use(next => async connection =>
            {
                var uring = (Uring.Transport.Internal.UringConnection)connection;
                seen.TrySetResult(NativeSocket.GetOption(uring.Fd, Linux.IPPROTO_TCP, Linux.TCP_NODELAY));
                await next(connection);
            }),
        });

        await ServerResources.AssertServesAsync(server);
        int value = await seen.Task.WaitAsync(Limits.Step);
        Assert.Equal(noDelay, value != 0);
    }

    [Theory, Engines]
    public async Task A_ConnectionClosed_callback_that_throws_is_logged_and_costs_nothing_else(UringEngine engine)
    {
        var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output, new ServerSetup
        {
            Listen = lo => lo.Use(next => async connection =>
            {
                connection.ConnectionClosed.Register(() =>
                {
                    ran.TrySetResult();
                    throw new InvalidOperationException("an application's ConnectionClosed callback failed");
                });
                await next(connection);
            }),
        });
        server.Logs.Allow(e => e.EventId.Id == 16);

        await ServerResources.AssertServesAsync(server); // Connection: close: the token fires at the close
        await ran.Task.WaitAsync(Limits.Step);
        Assert.True(await Eventually.HoldsAsync(() => server.Logs.Entries.Any(e => e.EventId.Id == 16), Limits.Stop),
            "The callback's exception was not logged.");
        await ServerResources.AssertServesAsync(server); // and the process (and server) go on
    }

    [Theory, Engines]
    public async Task Abort_sends_the_client_a_reset_and_fires_ConnectionClosed(UringEngine engine)
    {
        var connectionClosed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine,
            app => app.MapGet("/abort", context =>
            {
                context.Abort();
                return Task.CompletedTask;
            }),
            output,
            new ServerSetup
            {
                // Connection middleware sees the transport's ConnectionContext itself.
                Listen = lo => lo.Use(next => async connection =>
                {
                    connection.ConnectionClosed.Register(() => connectionClosed.TrySetResult());
                    await next(connection);
                }),
            });
        using RawConnection connection = await server.ConnectRawAsync();

        await connection.SendAsync(RawConnection.Request("GET", "/abort"));
        string end = await connection.ReadEndAsync();
        string how = end;
        // A FIN alone could be a half-close. Writing to a socket the server has really closed draws
        // a RST from its kernel: that is the reset the client must see.
        for (int i = 0; end == "FIN" && i < 20; i++)
        {
            try
            {
                await connection.SendAsync(RawConnection.Request("GET", "/after-abort"));
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
            {
                end = "RST";
                break;
            }
            await Task.Delay(50);
            end = await connection.ReadEndAsync();
            how += " " + end;
        }
        output.WriteLine($"client saw: {how}");

        Assert.Equal("RST", end);
        await connectionClosed.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory, Engines]
    public async Task RequestAborted_fires_when_the_client_closes_mid_request(UringEngine engine)
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/wait", async context =>
        {
            entered.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                aborted.TrySetResult();
            }
        }), output);
        RawConnection connection = await server.ConnectRawAsync();

        await connection.SendAsync(RawConnection.Request("GET", "/wait"));
        await entered.Task.WaitAsync(Limits.Step);
        connection.Dispose(); // an ordinary close: FIN

        await aborted.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory, Engines]
    public async Task A_request_followed_at_once_by_a_half_close_is_answered_then_closed(UringEngine engine)
    {
        // Request and FIN usually land in one receive batch: the response must still go out.
        await using var server = await TestServer.StartAsync(engine, app =>
        {
            TestData.MapPlaintext(app);
            app.MapGet("/slow", async context =>
            {
                await Task.Delay(20);
                await context.Response.WriteAsync("slow");
            });
        }, output);

        var failures = new List<string>();
        for (int i = 0; i < 320; i++)
        {
            string path = i % 16 == 15 ? "/slow" : "/plaintext";
            using RawConnection connection = await server.ConnectRawAsync();
            await connection.SendAsync(RawConnection.Request("GET", path));
            connection.Socket.Shutdown(SocketShutdown.Send);
            try
            {
                RawResponse response = await connection.ReadResponseAsync();
                Assert.Equal(200, response.StatusCode);
                Assert.Equal(path == "/slow" ? "slow" : "Hello, World!", response.BodyText);
                // Answered: Kestrel reads the end of input and closes at once, not after the grace.
                var closing = Stopwatch.StartNew();
                Assert.Equal("FIN", await connection.ReadEndAsync());
                Assert.True(closing.ElapsedMilliseconds < UringConnection.HalfCloseGraceMilliseconds / 2,
                    $"closed {closing.ElapsedMilliseconds} ms after the response");
            }
            catch (Exception e) when (e is IOException or InvalidDataException or SocketException)
            {
                failures.Add($"{i} {path}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of 320 half-closed requests lost their response: " + string.Join("; ", failures.Take(5)));
    }

    /// <summary>"Outer > Inner > ..." by type name, e.g. "ConnectionResetException > SocketException".</summary>
    private static string Chain(Exception e)
    {
        var names = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException)
            names.Add(x.GetType().Name);
        return string.Join(" > ", names);
    }
}
