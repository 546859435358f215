using System.Net.WebSockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Uring.Transport.Tests;

/// <summary>What Kestrel layers on the transport: TLS, HTTP/2 (ALPN and prior knowledge), WebSockets.</summary>
public sealed class ProtocolTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Https_with_a_self_signed_certificate_serves_HTTP_1_1(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapWhoAmI, output, TestCertificate.Https(HttpProtocols.Http1));
        using HttpClient client = server.CreateClient(TestCertificate.Trust);

        Assert.StartsWith("https://", server.Address);
        using HttpResponseMessage response = await client.GetAsync("whoami");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version11, response.Version);
        Assert.Equal("HTTP/1.1 https", await response.Content.ReadAsStringAsync());
    }

    [Theory, Engines]
    public async Task Http2_over_TLS_is_negotiated_with_ALPN(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapWhoAmI, output, TestCertificate.Https(HttpProtocols.Http1AndHttp2));
        using HttpClient client = server.CreateClient(TestCertificate.Trust);

        using var request = new HttpRequestMessage(HttpMethod.Get, "whoami")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using HttpResponseMessage response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("HTTP/2 https", await response.Content.ReadAsStringAsync());
    }

    [Theory, Engines]
    public async Task H2c_with_prior_knowledge_serves_HTTP_2_on_plain_TCP(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, TestData.MapWhoAmI, output, new ServerSetup
        {
            Listen = lo => lo.Protocols = HttpProtocols.Http2,
        });
        using HttpClient client = server.CreateClient();

        Assert.StartsWith("http://", server.Address);
        // Several requests, multiplexed on the one connection.
        var requests = Enumerable.Range(0, 8).Select(async _ =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "whoami")
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            };
            using HttpResponseMessage response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal("HTTP/2 http", await response.Content.ReadAsStringAsync());
        });
        await Task.WhenAll(requests).WaitAsync(Limits.Step);
    }

    [Theory, Engines]
    public async Task WebSocket_messages_are_echoed_exactly(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, app =>
        {
            app.UseWebSockets();
            app.Map("/ws", async context =>
            {
                if (!context.WebSockets.IsWebSocketRequest)
                {
                    context.Response.StatusCode = 400;
                    return;
                }
                using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync();
                var buffer = new byte[256 * 1024];
                while (true)
                {
                    int length = 0;
                    ValueWebSocketReceiveResult result;
                    do
                    {
                        result = await socket.ReceiveAsync(buffer.AsMemory(length), context.RequestAborted);
                        length += result.Count;
                    }
                    while (!result.EndOfMessage);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
                        return;
                    }
                    await socket.SendAsync(buffer.AsMemory(0, length), result.MessageType, endOfMessage: true, context.RequestAborted);
                }
            });
        }, output);
        using var client = new ClientWebSocket();
        var uri = new UriBuilder(server.BaseAddress) { Scheme = "ws", Path = "/ws" }.Uri;

        await client.ConnectAsync(uri, Limits.StepToken());
        (byte[] Bytes, WebSocketMessageType Type)[] messages =
        [
            (Encoding.UTF8.GetBytes("hello"), WebSocketMessageType.Text),
            (TestData.Random(100 * 1024, seed: 19), WebSocketMessageType.Binary),
            (Encoding.UTF8.GetBytes("bye"), WebSocketMessageType.Text),
        ];
        var buffer = new byte[256 * 1024];
        foreach (var (bytes, type) in messages)
        {
            await client.SendAsync(bytes, type, endOfMessage: true, Limits.StepToken());
            int length = 0;
            ValueWebSocketReceiveResult result;
            do
            {
                result = await client.ReceiveAsync(buffer.AsMemory(length), Limits.StepToken());
                length += result.Count;
            }
            while (!result.EndOfMessage);

            Assert.Equal(type, result.MessageType);
            Assert.Equal(bytes.Length, length);
            Assert.Equal(TestData.Sha256(bytes), TestData.Sha256(buffer.AsSpan(0, length)));
        }
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", Limits.StepToken());

        Assert.Equal(WebSocketState.Closed, client.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
    }
}
