using System.Security.Cryptography;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;

namespace Uring.Grpc.App;

/// <summary>How a server-streaming call ended, as the server saw it (the tests read these).</summary>
public enum StreamEnd
{
    Completed,
    /// <summary>The call's token fired before its deadline: the client cancelled (or the connection went).</summary>
    Cancelled,
    /// <summary>The call's token fired at its deadline.</summary>
    DeadlineExceeded,
    /// <summary>The server ended it with CANCELLED after <c>fail_after</c> messages.</summary>
    FailedByServer,
    /// <summary>The server aborted the HTTP/2 stream after <c>abort_after</c> messages.</summary>
    AbortedByServer,
}

/// <summary>The server's record of how each server-streaming call ended, in order.</summary>
public sealed class StreamLog
{
    private readonly Channel<StreamEnd> _ends = Channel.CreateUnbounded<StreamEnd>();

    public void Record(StreamEnd end) => _ends.Writer.TryWrite(end);

    /// <summary>The next call's end, waiting for it.</summary>
    public ValueTask<StreamEnd> NextAsync(CancellationToken cancellationToken) => _ends.Reader.ReadAsync(cancellationToken);
}

/// <summary>The service: each method checks its input and answers exactly what bench.proto says.</summary>
public sealed class BenchService(StreamLog log) : Bench.BenchBase
{
    /// <summary>The largest message either side may send (the default is 4 MiB; the tests send 1 MiB).</summary>
    public const int MaxMessageBytes = 8 * 1024 * 1024;

    /// <summary>Byte <c>k</c> of message <paramref name="id"/>'s payload: both ends can rebuild it.</summary>
    public static byte[] Pattern(long id, int size)
    {
        var bytes = new byte[size];
        for (int k = 0; k < size; k++)
        {
            bytes[k] = (byte)(id * 31 + k * 7 + (k >> 8));
        }
        return bytes;
    }

    public override Task<Message> Unary(Message request, ServerCallContext context) =>
        Task.FromResult(new Message { Id = request.Id, Payload = request.Payload });

    public override async Task ServerStream(StreamRequest request, IServerStreamWriter<Message> responseStream, ServerCallContext context)
    {
        if (request.Count < 0 || request.Size < 0 || request.Size > MaxMessageBytes || request.IntervalMs < 0 || request.FailAfter < 0 || request.AbortAfter < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"count, size (at most {MaxMessageBytes}), interval_ms, fail_after and abort_after must be >= 0"));
        }
        var token = context.CancellationToken;
        try
        {
            for (int i = 0; i < request.Count; i++)
            {
                if (request.FailAfter > 0 && i == request.FailAfter)
                {
                    log.Record(StreamEnd.FailedByServer);
                    throw new RpcException(new Status(StatusCode.Cancelled, $"the server cancelled the call after {i} messages"));
                }
                if (request.AbortAfter > 0 && i == request.AbortAfter)
                {
                    log.Record(StreamEnd.AbortedByServer);
                    context.GetHttpContext().Abort();
                    return;
                }
                await responseStream.WriteAsync(new Message { Id = i, Payload = UnsafeByteOperations.UnsafeWrap(Pattern(i, request.Size)) }, token);
                if (request.IntervalMs > 0)
                {
                    await Task.Delay(request.IntervalMs, token);
                }
            }
            log.Record(StreamEnd.Completed);
        }
        catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException)
        {
            // The call ended from outside (client cancel, deadline): a write then fails with
            // InvalidOperationException ("the request is complete") rather than OperationCanceledException
            // when it races the cancellation. That write can fail before the call's token fires: Kestrel
            // sets RequestAborted on a thread-pool thread and gRPC cancels the call's token from a callback
            // on it, so wait (bounded) for the token; an error the token never follows is not an end from outside.
            if (!await FiresWithinAsync(token, TimeSpan.FromSeconds(10)))
                throw;
            log.Record(context.Deadline <= DateTime.UtcNow ? StreamEnd.DeadlineExceeded : StreamEnd.Cancelled);
        }
    }

    private static async Task<bool> FiresWithinAsync(CancellationToken token, TimeSpan bound)
    {
        try
        {
            await Task.Delay(bound, token);
            return false;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }

    public override async Task<Summary> ClientStream(IAsyncStreamReader<Message> requestStream, ServerCallContext context)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long count = 0, bytes = 0;
        await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
        {
            count++;
            bytes += message.Payload.Length;
            hash.AppendData(message.Payload.Span);
        }
        return new Summary { Count = count, Bytes = bytes, Sha256 = ByteString.CopyFrom(hash.GetHashAndReset()) };
    }

    public override async Task Bidi(IAsyncStreamReader<Message> requestStream, IServerStreamWriter<Message> responseStream, ServerCallContext context)
    {
        await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
        {
            await responseStream.WriteAsync(message, context.CancellationToken);
        }
    }
}
