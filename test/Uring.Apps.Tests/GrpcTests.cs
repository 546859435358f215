using System.Net.Http;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Uring.Grpc.App;

namespace Uring.Apps.Tests;

/// <summary>
/// The gRPC service (perf/Uring.Grpc.App) and a Grpc.Net.Client client, both on the engine under
/// test (the client's SocketsHttpHandler through <c>UseUringTransport()</c>), over h2c and over TLS.
/// The null rows are both on Sockets, the reference the other rows must match.
/// </summary>
public sealed class GrpcTests(ITestOutputHelper output)
{
    private const int OneMiB = 1024 * 1024;

    public static TheoryData<UringEngine?, bool> EnginesAndTls { get; } = new()
    {
        { UringEngine.IoUring, false },
        { UringEngine.IoUring, true },
        { UringEngine.Epoll, false },
        { UringEngine.Epoll, true },
        { null, false }, // null: Kestrel's Sockets transport and the default SocketsHttpHandler
        { null, true },
    };

    /// <summary>The service and a channel to it; disposing both checks that the server logged no error.</summary>
    private sealed class Setup(AppHost server, GrpcChannel channel) : IAsyncDisposable
    {
        public Bench.BenchClient Client { get; } = new(channel);

        public StreamLog Log => server.App.Services.GetRequiredService<StreamLog>();

        public async ValueTask DisposeAsync()
        {
            channel.Dispose();
            await server.DisposeAsync();
        }
    }

    private async Task<Setup> StartAsync(UringEngine? engine, bool tls)
    {
        var server = await AppHost.StartAsync(hook => GrpcServer.Build(
            new GrpcSettings((UringEngine?)engine, "http://127.0.0.1:0;https://127.0.0.1:0", Rings: 2), hook), output);
        var handler = new SocketsHttpHandler { UseProxy = false };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            certificate is not null && certificate.GetCertHashString() == GrpcServer.Certificate.GetCertHashString();
        if (engine is UringEngine e)
            handler.UseUringTransport(o => o.Engine = (UringEngine)e);
        var channel = GrpcChannel.ForAddress(server.Address(tls ? "https" : "http"), new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = BenchService.MaxMessageBytes,
            MaxSendMessageSize = BenchService.MaxMessageBytes,
        });
        return new Setup(server, channel);
    }

    private static CallOptions Bounded(CancellationToken cancellationToken = default) =>
        new(deadline: DateTime.UtcNow + Limits.Step, cancellationToken: cancellationToken);

    /// <summary>
    /// Reads a server stream that must fail, checking that messages come in order; calls
    /// <paramref name="onMessage"/> with each count. Returns how many came and the failure.
    /// </summary>
    private static async Task<(int Received, RpcException Failure)> ReadUntilFailureAsync(
        AsyncServerStreamingCall<Message> call, Action<int>? onMessage = null)
    {
        int received = 0;
        var failure = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (Message message in call.ResponseStream.ReadAllAsync().WithCancellation(Limits.StepToken()))
            {
                Assert.Equal(received, message.Id);
                received++;
                onMessage?.Invoke(received);
            }
        });
        return (received, failure);
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Unary_calls_each_get_their_own_answer(UringEngine? engine, bool tls)
    {
        await using var setup = await StartAsync(engine, tls);

        // 16 callers at once, 20 calls each, every payload different.
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async caller =>
        {
            for (int call = 0; call < 20; call++)
            {
                long id = caller * 1000 + call;
                byte[] payload = BenchService.Pattern(id, 100 + call * 50);
                Message reply = await setup.Client.UnaryAsync(new Message { Id = id, Payload = ByteString.CopyFrom(payload) }, Bounded());
                Assert.Equal(id, reply.Id);
                Assert.Equal(payload, reply.Payload.ToByteArray());
            }
        }));
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Server_streaming_delivers_10000_messages_each_intact_and_in_order(UringEngine? engine, bool tls)
    {
        const int Count = 10_000, Size = 100;
        await using var setup = await StartAsync(engine, tls);

        using var call = setup.Client.ServerStream(new StreamRequest { Count = Count, Size = Size }, Bounded());
        int received = 0;
        await foreach (Message message in call.ResponseStream.ReadAllAsync())
        {
            Assert.Equal(received, message.Id);
            Assert.True(message.Payload.Span.SequenceEqual(BenchService.Pattern(received, Size)), $"message {received} differs");
            received++;
        }

        Assert.Equal(Count, received);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal(StreamEnd.Completed, await setup.Log.NextAsync(Limits.StepToken()));
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Client_streaming_arrives_whole_at_the_server(UringEngine? engine, bool tls)
    {
        const int Count = 500;
        await using var setup = await StartAsync(engine, tls);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long bytes = 0;

        using var call = setup.Client.ClientStream(Bounded());
        for (int i = 0; i < Count; i++)
        {
            byte[] payload = BenchService.Pattern(i, 1000 + i * 13);
            hash.AppendData(payload);
            bytes += payload.Length;
            await call.RequestStream.WriteAsync(new Message { Id = i, Payload = ByteString.CopyFrom(payload) });
        }
        await call.RequestStream.CompleteAsync();
        Summary summary = await call;

        Assert.Equal(Count, summary.Count);
        Assert.Equal(bytes, summary.Bytes);
        Assert.Equal(hash.GetHashAndReset(), summary.Sha256.ToByteArray());
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Bidirectional_streaming_of_1_MiB_messages_echoes_each(UringEngine? engine, bool tls)
    {
        const int Count = 16;
        await using var setup = await StartAsync(engine, tls);

        using var call = setup.Client.Bidi(Bounded());
        // Write and read at once: each side's flow control window is far smaller than 16 MiB.
        Task writes = Task.Run(async () =>
        {
            for (int i = 0; i < Count; i++)
                await call.RequestStream.WriteAsync(new Message { Id = i, Payload = UnsafeByteOperations.UnsafeWrap(BenchService.Pattern(i, OneMiB)) });
            await call.RequestStream.CompleteAsync();
        });
        int received = 0;
        await foreach (Message message in call.ResponseStream.ReadAllAsync())
        {
            Assert.Equal(received, message.Id);
            Assert.Equal(OneMiB, message.Payload.Length);
            Assert.True(message.Payload.Span.SequenceEqual(BenchService.Pattern(received, OneMiB)), $"message {received} differs");
            received++;
        }
        await writes.WaitAsync(Limits.Step);

        Assert.Equal(Count, received);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Deadline_expiring_mid_stream_ends_the_call_with_DeadlineExceeded(UringEngine? engine, bool tls)
    {
        await using var setup = await StartAsync(engine, tls);

        // 200 messages 20 ms apart need 4 s; the deadline is 1 s.
        using var call = setup.Client.ServerStream(new StreamRequest { Count = 200, Size = 64, IntervalMs = 20 },
            deadline: DateTime.UtcNow.AddSeconds(1));
        var (received, failure) = await ReadUntilFailureAsync(call);

        Assert.Equal(StatusCode.DeadlineExceeded, failure.StatusCode);
        Assert.InRange(received, 1, 199);
        // The server's call ended early too (its own deadline, or the client's RST_STREAM at the client's deadline, whichever came first).
        Assert.Contains(await setup.Log.NextAsync(Limits.StepToken()), new[] { StreamEnd.DeadlineExceeded, StreamEnd.Cancelled });
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Client_cancelling_mid_stream_cancels_the_servers_call(UringEngine? engine, bool tls)
    {
        await using var setup = await StartAsync(engine, tls);
        using var cancel = new CancellationTokenSource();

        // Paced, so that the server is still sending when its token fires: once the client's reset
        // arrives Kestrel drops later writes unsent, and an unpaced loop could finish all of them
        // before the token (cancelled from a thread-pool callback) fires.
        using var call = setup.Client.ServerStream(new StreamRequest { Count = 1_000_000, Size = 64, IntervalMs = 1 }, Bounded(cancel.Token));
        var (_, failure) = await ReadUntilFailureAsync(call, received =>
        {
            if (received == 100) cancel.Cancel();
        });

        Assert.Equal(StatusCode.Cancelled, failure.StatusCode);
        Assert.Equal(StreamEnd.Cancelled, await setup.Log.NextAsync(Limits.StepToken()));
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Server_cancelling_mid_stream_gives_the_client_Cancelled_after_the_messages_sent(UringEngine? engine, bool tls)
    {
        await using var setup = await StartAsync(engine, tls);

        using var call = setup.Client.ServerStream(new StreamRequest { Count = 1000, Size = 64, FailAfter = 50 }, Bounded());
        var (received, failure) = await ReadUntilFailureAsync(call);

        Assert.Equal(StatusCode.Cancelled, failure.StatusCode);
        Assert.Equal("the server cancelled the call after 50 messages", failure.Status.Detail);
        Assert.Equal(50, received);
        Assert.Equal(StreamEnd.FailedByServer, await setup.Log.NextAsync(Limits.StepToken()));
    }

    [Theory, MemberData(nameof(EnginesAndTls))]
    public async Task Server_aborting_the_stream_mid_call_fails_the_client_as_on_Sockets(UringEngine? engine, bool tls)
    {
        await using var setup = await StartAsync(engine, tls);

        using var call = setup.Client.ServerStream(new StreamRequest { Count = 1000, Size = 64, AbortAfter = 50 }, Bounded());
        var (received, failure) = await ReadUntilFailureAsync(call);

        output.WriteLine($"after {received} messages: {failure.StatusCode} {failure.Status.Detail}");
        // As on Sockets: Kestrel resets the stream with INTERNAL_ERROR, which the client reports as
        // Internal; messages still in flight (in practice all 50) are dropped with the stream.
        Assert.Equal(StatusCode.Internal, failure.StatusCode);
        Assert.Contains("INTERNAL_ERROR", failure.Status.Detail, StringComparison.Ordinal);
        Assert.InRange(received, 0, 50);
        Assert.Equal(StreamEnd.AbortedByServer, await setup.Log.NextAsync(Limits.StepToken()));

        // Only that stream was reset: the connection still carries calls.
        Message reply = await setup.Client.UnaryAsync(new Message { Id = 7 }, Bounded());
        Assert.Equal(7, reply.Id);
    }
}
