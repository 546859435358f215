using System.Net.Http;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Uring.Transport;
using Uring.Transport.Internal;

namespace Uring.Transport.Tests;

/// <summary>
/// The client side: HttpClient through <c>SocketsHttpHandler.UseUringTransport()</c> and
/// <see cref="UringConnectionFactory"/>, each on the engine under test, against Kestrel on the same engine.
/// </summary>
public sealed class ClientTests(ITestOutputHelper output)
{
    private const string FactoryDisposed = "The connection factory was disposed.";

    private static UringTransportOptions Options(UringEngine engine) => new() { Engine = engine, RingCount = TestServer.RingCount };

    private static Action<UringTransportOptions> Configure(UringEngine engine) => o =>
    {
        o.Engine = engine;
        o.RingCount = TestServer.RingCount;
    };

    /// <summary>A factory in the suite's test environment (or <paramref name="environment"/>).</summary>
    private static UringConnectionFactory Factory(UringEngine engine, TransportEnvironment? environment = null) =>
        Factory(Options(engine), environment);

    private static UringConnectionFactory Factory(UringTransportOptions options, TransportEnvironment? environment = null) =>
        new(Microsoft.Extensions.Options.Options.Create(options), NullLoggerFactory.Instance, environment ?? TestEnvironment.Suite);

    /// <summary><paramref name="handler"/> on the uring client, in the suite's test environment (or <paramref name="environment"/>).</summary>
    private static SocketsHttpHandler OnUring(SocketsHttpHandler handler, Action<UringTransportOptions> configure, TransportEnvironment? environment = null) =>
        handler.UseUringTransport(configure, NullLoggerFactory.Instance, environment ?? TestEnvironment.Suite);

    /// <summary>An HttpClient aimed at <paramref name="server"/> whose handler connects through the uring client.</summary>
    private static HttpClient UringClient(TestServer server, UringEngine engine, Action<SocketsHttpHandler>? configure = null) =>
        server.CreateClient(handler =>
        {
            configure?.Invoke(handler);
            OnUring(handler, Configure(engine));
        });

    [Theory, Engines]
    public async Task Get_through_the_handler_returns_Hello_World(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);
        string? streamType = null;
        using HttpClient client = server.CreateClient(handler =>
        {
            OnUring(handler, Configure(engine));
            var connect = handler.ConnectCallback!;
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                Stream stream = await connect(context, cancellationToken);
                streamType = stream.GetType().Name;
                return stream;
            };
        });

        using HttpResponseMessage response = await client.GetAsync("plaintext");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Hello, World!", await response.Content.ReadAsStringAsync());
        Assert.Equal("ConnectionStream", streamType); // the transport's stream over its pipes
    }

    [Theory, Engines]
    public async Task Post_of_8_MiB_is_echoed_byte_exact(UringEngine engine)
    {
        const int Size = 8 * 1024 * 1024;
        await using var server = await TestServer.StartAsync(engine, app => app.MapPost("/echo", async context =>
        {
            // Read it all, then answer: HttpClient's HTTP/1.1 sends the whole body before it reads the response.
            var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            context.Response.ContentLength = body.Length;
            await context.Response.Body.WriteAsync(body.GetBuffer().AsMemory(0, (int)body.Length));
        }), output);
        using HttpClient client = UringClient(server, engine);
        byte[] upload = TestData.Random(Size, seed: 8);

        using HttpResponseMessage response = await client.PostAsync("echo", new ByteArrayContent(upload));
        byte[] echoed = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Size, echoed.Length);
        Assert.Equal(TestData.Sha256(upload), TestData.Sha256(echoed));
    }

    [Theory, Engines]
    public async Task Sixty_four_concurrent_callers_each_get_their_hundred_answers(UringEngine engine)
    {
        const int Callers = 64, RequestsEach = 100;
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/c/{c}/r/{r}",
            context => TestData.WriteText(context, $"{context.Request.RouteValues["c"]}/{context.Request.RouteValues["r"]}")), output);
        using HttpClient client = UringClient(server, engine);
        int answered = 0;

        await Task.WhenAll(Enumerable.Range(0, Callers).Select(async c =>
        {
            for (int r = 0; r < RequestsEach; r++)
            {
                Assert.Equal($"{c}/{r}", await client.GetStringAsync($"c/{c}/r/{r}"));
                Interlocked.Increment(ref answered);
            }
        })).WaitAsync(Limits.Step * 2);

        Assert.Equal(Callers * RequestsEach, answered);
    }

    [Theory, Engines]
    public async Task Http2_over_TLS_is_negotiated_through_the_handler(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapWhoAmI, output, TestCertificate.Https(HttpProtocols.Http1AndHttp2));
        using HttpClient client = UringClient(server, engine, TestCertificate.Trust);

        using var request = new HttpRequestMessage(HttpMethod.Get, "whoami")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using HttpResponseMessage response = await client.SendAsync(request);

        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("HTTP/2 https", await response.Content.ReadAsStringAsync());
    }

    [Theory, Engines]
    public async Task Localhost_with_both_loopback_addresses_connects_to_whichever_one_answers(UringEngine engine)
    {
        // This machine's resolver may know localhost as 127.0.0.1 only: both addresses are injected,
        // in both orders, and the server listens on one family at a time, so one order must fall back.
        // (Without IPv6 here, connecting to ::1 fails at once and 127.0.0.1 is the fallback.)
        var asked = new List<string>();
        IPAddress[] families = Loopback.HasIPv6 ? [IPAddress.Loopback, IPAddress.IPv6Loopback] : [IPAddress.Loopback];
        foreach (IPAddress listening in families)
        {
            await using var server = await TestServer.StartAsync(engine,
                app => app.MapGet("/local", context => TestData.WriteText(context, context.Connection.LocalIpAddress!.ToString())),
                output, new ServerSetup { Address = listening });
            IPAddress[][] orders = [[IPAddress.IPv6Loopback, IPAddress.Loopback], [IPAddress.Loopback, IPAddress.IPv6Loopback]];
            foreach (IPAddress[] answer in orders)
            {
                var handler = OnUring(new SocketsHttpHandler { UseProxy = false }, Configure(engine), TestEnvironment.Suite with
                {
                    ResolveHost = (host, _, _) =>
                    {
                        lock (asked) asked.Add(host);
                        return Task.FromResult(answer);
                    },
                });
                using var client = new HttpClient(handler) { BaseAddress = new Uri($"http://localhost:{server.EndPoint!.Port}/"), Timeout = Limits.Step };

                Assert.Equal(listening.ToString(), await client.GetStringAsync("local"));
            }
        }
        Assert.All(asked, host => Assert.Equal("localhost", host));

        // And the real resolver, against a listener that answers on both families (dual-stack [::]).
        await using var dualStack = await TestServer.StartAsync(engine, TestData.MapPlaintext, output,
            new ServerSetup { Address = Loopback.HasIPv6 ? IPAddress.IPv6Any : IPAddress.Loopback });
        using var real = new HttpClient(OnUring(new SocketsHttpHandler { UseProxy = false }, Configure(engine)))
        {
            BaseAddress = new Uri($"http://localhost:{dualStack.EndPoint!.Port}/"),
            Timeout = Limits.Step,
        };
        Assert.Equal("Hello, World!", await real.GetStringAsync("plaintext"));
    }

    [Theory, Engines]
    public async Task Connection_refused_is_an_HttpRequestException_over_a_SocketException_naming_the_endpoint(UringEngine engine)
    {
        // Bound but not listening: the port stays ours and every SYN is answered with RST.
        using var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        bound.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = (IPEndPoint)bound.LocalEndPoint!;
        using var client = new HttpClient(OnUring(new SocketsHttpHandler { UseProxy = false }, Configure(engine))) { Timeout = Limits.Step };

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"http://{endPoint}/"));

        Assert.Equal(HttpRequestError.ConnectionError, error.HttpRequestError);
        var socketError = Assert.IsType<SocketException>(error.InnerException);
        Assert.Equal(SocketError.ConnectionRefused, socketError.SocketErrorCode);
        Assert.Contains(endPoint.ToString(), socketError.Message);

        // The factory throws the SocketException itself; for a name, the last address's failure.
        await using var factory = Factory(engine);
        var direct = await Assert.ThrowsAsync<SocketException>(() => factory.ConnectAsync(endPoint).AsTask());
        Assert.Equal(SocketError.ConnectionRefused, direct.SocketErrorCode);
        await using var resolving = Factory(engine, TestEnvironment.Suite with
        {
            ResolveHost = (_, _, _) => Task.FromResult(new[] { IPAddress.IPv6Loopback, IPAddress.Loopback }),
        });
        var last = await Assert.ThrowsAsync<SocketException>(() => resolving.ConnectAsync(new DnsEndPoint("refusing.test", endPoint.Port)).AsTask());
        Assert.Contains(endPoint.ToString(), last.Message);
    }

    [Theory, Engines]
    public async Task Cancelling_a_connect_to_a_full_backlog_ends_it_quickly_and_closes_its_socket(UringEngine engine)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1); // never accepts: once its queue is full, the kernel drops new SYNs
        var endPoint = (IPEndPoint)listener.LocalEndPoint!;
        var fillers = new List<Socket>();
        try
        {
            bool full = false;
            for (int i = 0; i < 32 && !full; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                fillers.Add(filler);
                using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                try
                {
                    await filler.ConnectAsync(endPoint, wait.Token);
                }
                catch (OperationCanceledException)
                {
                    full = true;
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
                {
                    output.WriteLine("A full queue refuses connects here (net.ipv4.tcp_abort_on_overflow=1): no connect can be left pending.");
                    return;
                }
            }
            Assert.True(full, "The listener's queue never filled up: every connect completed.");

            await using var factory = Factory(engine);
            using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            var stopwatch = Stopwatch.StartNew();
            var canceled = await Assert.ThrowsAnyAsync<OperationCanceledException>(
                () => factory.ConnectAsync(endPoint, cancel.Token).AsTask().WaitAsync(Limits.Step));
            stopwatch.Stop();

            Assert.Equal(cancel.Token, canceled.CancellationToken);
            Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"The cancelled connect took {stopwatch.Elapsed.TotalSeconds:0.0} s to end.");
        }
        finally
        {
            foreach (Socket filler in fillers) filler.Dispose();
        }
        // The fillers are closed; any socket of ours still aimed at the listener is the cancelled connect's.
        Assert.Equal(0, OpenSockets.To(endPoint.Port));
    }

    [Theory, Engines]
    public async Task Unix_socket_endpoint_through_the_factory_serves_a_request(UringEngine engine)
    {
        DirectoryInfo directory = Directory.CreateTempSubdirectory("uring-client-");
        try
        {
            string path = Path.Combine(directory.FullName, "kestrel.sock");
            await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output, new ServerSetup { UnixSocketPath = path });
            await using var factory = Factory(engine);
            await using ConnectionContext connection = await factory.ConnectAsync(new UnixDomainSocketEndPoint(path), Limits.StepToken());

            Assert.Equal(engine, connection.Features.Get<IUringConnectionFeature>()?.Engine);
            Assert.Equal(path, connection.RemoteEndPoint?.ToString());
            await connection.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes(RawConnection.Request("GET", "/plaintext", "Connection: close")));
            string response = await ReadToEndAsync(connection.Transport.Input);

            Assert.StartsWith("HTTP/1.1 200 OK", response);
            Assert.EndsWith("\r\n\r\nHello, World!", response);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory, Engines]
    public async Task Disposing_the_factory_ends_requests_in_flight_with_a_clear_error_and_closes_every_socket(UringEngine engine)
    {
        const int Requests = 4;
        int arrived = 0;
        var allArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/hang", async context =>
        {
            if (Interlocked.Increment(ref arrived) == Requests) allArrived.TrySetResult();
            await release.Task;
        }), output);
        try
        {
            var factory = Factory(engine);
            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }.UseUringTransport(factory))
            {
                BaseAddress = server.BaseAddress,
                Timeout = Limits.Step,
            };
            Task<HttpResponseMessage>[] inFlight = [.. Enumerable.Range(0, Requests).Select(_ => client.GetAsync("hang"))];
            await allArrived.Task.WaitAsync(Limits.Step);
            Assert.Equal(Requests, OpenSockets.To(server.EndPoint!.Port));

            await factory.DisposeAsync().AsTask().WaitAsync(Limits.Step);

            foreach (Task<HttpResponseMessage> request in inFlight)
            {
                var error = await Assert.ThrowsAsync<HttpRequestException>(() => request.WaitAsync(TimeSpan.FromSeconds(5)));
                Assert.Contains(FactoryDisposed, Messages(error));
            }
            Assert.True(await Infrastructure.Eventually.HoldsAsync(() => OpenSockets.To(server.EndPoint.Port) == 0, TimeSpan.FromSeconds(5)),
                $"{OpenSockets.To(server.EndPoint.Port)} socket(s) to the server are still open.");
            await Assert.ThrowsAsync<ObjectDisposedException>(() => factory.ConnectAsync(server.EndPoint).AsTask());
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Theory, Engines]
    public async Task The_factory_uses_the_loops_of_a_server_in_this_process(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);
        await using var factory = Factory(engine, server.Environment);

        await using ConnectionContext connection = await factory.ConnectAsync(server.EndPoint!, Limits.StepToken());

        IoLoopGroupRegistry.ClientLease lease = Assert.IsType<IoLoopGroupRegistry.ClientLease>(factory.Lease);
        Assert.True(lease.SharedWithServer, "The client started loops of its own although a server runs loops of its engine.");
        Assert.Equal(engine, lease.Group.Selection.Engine);
        Assert.Equal(engine, connection.Features.Get<IUringConnectionFeature>()?.Engine);
        await connection.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes(RawConnection.Request("GET", "/plaintext", "Connection: close")));
        Assert.EndsWith("Hello, World!", await ReadToEndAsync(connection.Transport.Input));
    }

    [Theory, Engines]
    public async Task Loops_stop_only_once_neither_their_server_nor_a_client_holds_them(UringEngine engine)
    {
        var registry = new IoLoopGroupRegistry(); // private: other tests' servers stay out of it
        UringTransportOptions options = Options(engine);
        IoLoopGroup serverGroup = await registry.StartServerGroupAsync(options, NullLogger.Instance, TestEnvironment.Suite);

        var onServer = await registry.AcquireClientAsync(options, NullLogger.Instance, TestEnvironment.Suite, Limits.StepToken());
        Assert.Same(serverGroup, onServer.Group);
        Assert.True(onServer.SharedWithServer);

        await registry.ReleaseServerGroupAsync(serverGroup);
        Assert.False(Stopped(serverGroup), "The server's loops stopped under a client that still uses them.");

        // The released server group is no longer offered: clients share one group of their own.
        var first = await registry.AcquireClientAsync(options, NullLogger.Instance, TestEnvironment.Suite, Limits.StepToken());
        var second = await registry.AcquireClientAsync(options, NullLogger.Instance, TestEnvironment.Suite, Limits.StepToken());
        Assert.NotSame(serverGroup, first.Group);
        Assert.Same(first.Group, second.Group);
        Assert.False(first.SharedWithServer);

        await onServer.DisposeAsync();
        Assert.True(Stopped(serverGroup), "The server's loops outlived their last holder.");

        await first.DisposeAsync();
        Assert.False(Stopped(first.Group), "The client loops stopped while a client still holds them.");
        await second.DisposeAsync();
        Assert.True(Stopped(first.Group), "The client loops outlived their last holder.");

        // The next client starts them afresh.
        await using var again = await registry.AcquireClientAsync(options, NullLogger.Instance, TestEnvironment.Suite, Limits.StepToken());
        Assert.NotSame(first.Group, again.Group);
    }

    [Theory, Engines]
    public async Task AddHttpClient_UseUringTransport_gives_working_clients(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapPlaintext, output);
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHttpClient("uring", c =>
            {
                c.BaseAddress = server.BaseAddress;
                c.Timeout = Limits.Step;
                // The factory keeps its handlers (and their idle connections) past this test: close each
                // connection after its response, so none outlives the test and its loops.
                c.DefaultRequestHeaders.ConnectionClose = true;
            })
            .UseUringTransport(Configure(engine))
            .UseSocketsHttpHandler((handler, _) => handler.UseProxy = false);
        await using ServiceProvider provider = services.BuildServiceProvider();
        var clients = provider.GetRequiredService<IHttpClientFactory>();

        for (int i = 0; i < 3; i++)
        {
            using HttpClient client = clients.CreateClient("uring");
            Assert.Equal("Hello, World!", await client.GetStringAsync("plaintext"));
        }
    }

    private static bool Stopped(IoLoopGroup group) => group.Loops.All(l => l.Stopped.IsCompleted);

    /// <summary>Reads until the peer ends the stream (bounded).</summary>
    private static async Task<string> ReadToEndAsync(System.IO.Pipelines.PipeReader input)
    {
        using var cts = new CancellationTokenSource(Limits.Step);
        while (true)
        {
            var result = await input.ReadAsync(cts.Token);
            if (result.IsCompleted)
            {
                string text = Encoding.ASCII.GetString(result.Buffer);
                input.AdvanceTo(result.Buffer.End);
                return text;
            }
            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private static string Messages(Exception e)
    {
        var messages = new StringBuilder();
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
            messages.Append(inner.GetType().Name).Append(": ").AppendLine(inner.Message);
        return messages.ToString();
    }

    /// <summary>This process's open TCP sockets aimed at a port (client ends), from /proc/net/tcp{,6} and /proc/self/fd.</summary>
    private static class OpenSockets
    {
        public static int To(int port)
        {
            var inodes = TcpTable.Rows().Where(r => r.RemotePort == port).Select(r => r.Inode).ToHashSet();
            return OpenFiles.List().Values.Count(t => t.StartsWith("socket:[", StringComparison.Ordinal) && inodes.Contains(t[8..^1]));
        }
    }
}
