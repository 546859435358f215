using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

namespace Uring.Perf;

/// <summary>
/// The sample app's endpoints (TechEmpower-style, plus what the soak and benchmarks need). Linked
/// into perf/Uring.Perf.App, which serves them, and into the transport tests, which serve them to
/// the soak's workload under fault injection.
/// </summary>
/// <remarks>
/// <code>
///   GET /plaintext              -> "Hello, World!"                 text/plain
///   GET /json                   -> {"message":"Hello, World!"}    application/json (source-generated System.Text.Json)
///   POST /echo                  -> the request body                application/octet-stream
///   GET /download?size=N&amp;seed=S -> N bytes from new Random(S)     application/octet-stream (the soak test's downloads)
///   GET /bytes?size=N           -> N bytes of one fixed pattern    application/octet-stream (the large-response benchmark)
///   POST /upload                -> the body's length, as text      text/plain (the upload benchmark: the body is read and dropped)
///   anything else               -> 404
/// </code>
/// </remarks>
internal static class SampleEndpoints
{
    private static readonly byte[] s_plaintextBody = Encoding.UTF8.GetBytes("Hello, World!");

    /// <summary>Answers one request (terminal middleware: <c>app.Run(SampleEndpoints.Handle)</c>).</summary>
    public static Task Handle(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        if (HttpMethods.IsGet(request.Method))
        {
            string? path = request.Path.Value;
            if (string.Equals(path, "/plaintext", StringComparison.Ordinal))
            {
                return Write(response, "text/plain", s_plaintextBody);
            }
            if (string.Equals(path, "/json", StringComparison.Ordinal))
            {
                // Serialized per request (TechEmpower rule), through the source-generated context.
                byte[] body = JsonSerializer.SerializeToUtf8Bytes(new JsonMessage("Hello, World!"), SampleJsonContext.Default.JsonMessage);
                return Write(response, "application/json", body);
            }
            if (string.Equals(path, "/download", StringComparison.Ordinal))
            {
                return DownloadAsync(context);
            }
            if (string.Equals(path, "/bytes", StringComparison.Ordinal))
            {
                return BytesAsync(context);
            }
        }
        else if (HttpMethods.IsPost(request.Method))
        {
            if (string.Equals(request.Path.Value, "/echo", StringComparison.Ordinal))
                return EchoAsync(context);
            if (string.Equals(request.Path.Value, "/upload", StringComparison.Ordinal))
                return UploadAsync(context);
        }

        response.StatusCode = StatusCodes.Status404NotFound;
        response.ContentLength = 0;
        return Task.CompletedTask;
    }

    /// <summary>Streams the request body back, with the request's Content-Length when it has one.</summary>
    /// <remarks>
    /// A loop of its own rather than PipeReader.CopyToAsync(PipeWriter): when the response ends early
    /// (the client left, Kestrel aborted the response) while the last segment of a read is written,
    /// that method advances the body reader to default(SequencePosition), and Kestrel's request body
    /// throws ArgumentOutOfRangeException. Found by the soak (2 in 10 minutes).
    /// </remarks>
    private static async Task EchoAsync(HttpContext context)
    {
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = context.Request.ContentLength;
        PipeReader body = context.Request.BodyReader;
        PipeWriter output = context.Response.BodyWriter;
        try
        {
            while (true)
            {
                ReadResult read = await body.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in read.Buffer)
                    output.Write(segment.Span);
                body.AdvanceTo(read.Buffer.End);
                // Flushed every time, the last too: without it, the echo's tail was seen to stay
                // unsent after the app returned (on the Sockets transport as well).
                FlushResult flushed = await output.FlushAsync();
                if (read.IsCompleted || flushed.IsCompleted) return; // done, or the client is gone
            }
        }
        catch (IOException)
        {
            // The client reset or broke off its upload (ConnectionResetException, BadHttpRequestException):
            // the echo cannot be completed, and that is not a server error for Kestrel to log.
            context.Abort();
        }
    }

    private const long MaxDownload = 1L << 30;

    /// <summary>size bytes (0 to 1 GiB) from new Random(seed), seed 0 by default, written 64 KiB at a time.</summary>
    private static async Task DownloadAsync(HttpContext context)
    {
        var response = context.Response;
        if (!long.TryParse(context.Request.Query["size"], out long size) || size is < 0 or > MaxDownload
            || !int.TryParse(context.Request.Query["seed"].FirstOrDefault() ?? "0", out int seed))
        {
            response.StatusCode = StatusCodes.Status400BadRequest;
            response.ContentLength = 0;
            return;
        }
        response.ContentType = "application/octet-stream";
        response.ContentLength = size;
        // A seeded Random makes each byte in turn, so the client can check the body in any slices.
        var random = new Random(seed);
        var writer = response.BodyWriter;
        for (long left = size; left > 0 && !context.RequestAborted.IsCancellationRequested;)
        {
            int n = (int)Math.Min(left, 64 * 1024);
            random.NextBytes(writer.GetSpan(n)[..n]);
            writer.Advance(n);
            left -= n;
            var flushed = await writer.FlushAsync();
            if (flushed.IsCompleted)
            {
                return; // the client is gone
            }
        }
    }

    // One 64 KiB pattern block, written as many times as a /bytes response needs: the benchmark
    // measures the transport's send path, not the making of the bytes.
    private static readonly byte[] s_pattern = Enumerable.Range(0, 64 * 1024).Select(i => (byte)(i * 31 + 7)).ToArray();

    /// <summary>Throws unless body is the start of a /bytes response: <see cref="s_pattern"/> repeated.</summary>
    public static void AssertPattern(ReadOnlySpan<byte> body)
    {
        for (int offset = 0; offset < body.Length; offset += s_pattern.Length)
        {
            ReadOnlySpan<byte> chunk = body.Slice(offset, Math.Min(s_pattern.Length, body.Length - offset));
            if (!chunk.SequenceEqual(s_pattern.AsSpan(0, chunk.Length)))
            {
                int at = chunk.CommonPrefixLength(s_pattern.AsSpan(0, chunk.Length));
                throw new InvalidDataException($"A /bytes body differs from its pattern at byte {offset + at}.");
            }
        }
    }

    /// <summary>size bytes (0 to 1 GiB) of <see cref="s_pattern"/>, 64 KiB per write, each write flushed.</summary>
    private static async Task BytesAsync(HttpContext context)
    {
        var response = context.Response;
        if (!long.TryParse(context.Request.Query["size"], out long size) || size is < 0 or > MaxDownload)
        {
            response.StatusCode = StatusCodes.Status400BadRequest;
            response.ContentLength = 0;
            return;
        }
        response.ContentType = "application/octet-stream";
        response.ContentLength = size;
        var writer = response.BodyWriter;
        for (long left = size; left > 0;)
        {
            int n = (int)Math.Min(left, s_pattern.Length);
            var flushed = await writer.WriteAsync(s_pattern.AsMemory(0, n));
            if (flushed.IsCompleted)
            {
                return; // the client is gone
            }
            left -= n;
        }
    }

    /// <summary>Reads the request body to its end and answers with its length.</summary>
    private static async Task UploadAsync(HttpContext context)
    {
        PipeReader body = context.Request.BodyReader;
        long total = 0;
        try
        {
            while (true)
            {
                ReadResult read = await body.ReadAsync();
                total += read.Buffer.Length;
                body.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted) break;
            }
        }
        catch (IOException)
        {
            context.Abort(); // the client broke off its upload
            return;
        }
        byte[] answer = Encoding.ASCII.GetBytes(total.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Write(context.Response, "text/plain", answer);
    }

    private static Task Write(HttpResponse response, string contentType, byte[] body)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = contentType;
        response.ContentLength = body.Length;

        // Copy into the response pipe; Kestrel flushes when the request completes.
        var writer = response.BodyWriter;
        body.CopyTo(writer.GetSpan(body.Length));
        writer.Advance(body.Length);
        return Task.CompletedTask;
    }
}

internal readonly record struct JsonMessage([property: JsonPropertyName("message")] string Message);

[JsonSerializable(typeof(JsonMessage))]
internal sealed partial class SampleJsonContext : JsonSerializerContext
{
}
