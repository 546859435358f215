using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;

namespace Uring.Perf.Runner;

/// <summary>
/// The one gRPC call grpc-unary-64 makes: Bench.Unary (perf/Uring.Grpc.App/Protos/bench.proto)
/// with a fixed Message, which the service echoes. The runner has no gRPC or protobuf library, so
/// the call is written here as bytes; <see cref="Probe"/> makes it once and checks the answer.
/// </summary>
internal static class GrpcUnary
{
    public const string Path = "/uring.bench.Bench/Unary";

    /// <summary>Bytes in the request's payload field.</summary>
    public const int PayloadBytes = 16;

    /// <summary>What h2load sends with each call (-H): a gRPC request needs its content type; te: trailers as gRPC clients send it.</summary>
    public static IReadOnlyList<string> Headers { get; } = ["content-type: application/grpc", "te: trailers"];

    /// <summary>
    /// The request body: gRPC's 5-byte prefix (not compressed, big-endian length) and the protobuf
    /// Message { id = 1 (field 1, varint), payload = bytes 0..15 (field 2, length-delimited) }.
    /// The echo's response body is the same bytes.
    /// </summary>
    public static byte[] Frame { get; } = MakeFrame();

    private static byte[] MakeFrame()
    {
        byte[] message = [0x08, 0x01, 0x12, PayloadBytes, .. Enumerable.Range(0, PayloadBytes).Select(i => (byte)i)];
        return [0, 0, 0, 0, (byte)message.Length, .. message];
    }

    /// <summary>
    /// One call over h2c to <paramref name="baseUrl"/>; null when it answered HTTP 200, grpc-status 0
    /// and the echoed message (h2load only counts HTTP statuses: a gRPC error is a 200 too).
    /// </summary>
    public static string? Probe(string baseUrl)
    {
        try
        {
            using var handler = new SocketsHttpHandler { UseProxy = false };
            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
            using var request = new HttpRequestMessage(HttpMethod.Post, baseUrl + Path)
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact, // h2c with prior knowledge
                Content = new ByteArrayContent(Frame),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
            request.Headers.TryAddWithoutValidation("te", "trailers");
            // HttpClient has no synchronous HTTP/2; the runner's main thread may block here.
            using var response = client.SendAsync(request).GetAwaiter().GetResult();
            byte[] body = response.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult();
            // A call that fails at once answers grpc-status in the headers (trailers-only).
            string? status = response.TrailingHeaders.TryGetValues("grpc-status", out var trailer) ? trailer.FirstOrDefault()
                : response.Headers.TryGetValues("grpc-status", out var header) ? header.FirstOrDefault() : null;
            if (response.StatusCode != HttpStatusCode.OK || status != "0")
            {
                string message = response.TrailingHeaders.TryGetValues("grpc-message", out var m) ? m.FirstOrDefault() ?? "" : "";
                return $"HTTP {(int)response.StatusCode}, grpc-status {status ?? "missing"} {message}".TrimEnd();
            }
            return body.AsSpan().SequenceEqual(Frame) ? null : $"the reply is not the echo ({body.Length} bytes)";
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException or SocketException)
        {
            return ex.Message;
        }
    }
}
