using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;

namespace Uring.Perf.Runner.Measure;

/// <summary>
/// Asks a server started with <c>--gc-endpoint</c> for a full GC: one POST /gc on a connection of
/// its own (opened for it and closed after it, "Connection: close"; the idle connections are not
/// touched), bounded by a timeout. The app runs two blocking, compacting, aggressive gen2 GCs
/// (finalizers in between) and answers the managed heap size after them.
/// </summary>
internal static class ServerGc
{
    /// <summary>A full GC of a server holding 10,000 connections takes well under a second; this bounds a stuck one.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>The managed heap bytes the server answered, or null and why not.</summary>
    public static (long? HeapBytes, string? Error) Collect(int port, CancellationToken cancel)
    {
        try
        {
            using var handler = new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.Zero, MaxConnectionsPerServer = 1 };
            using var client = new HttpClient(handler) { Timeout = Timeout };
            using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/gc")
            {
                Content = new ByteArrayContent([]),
            };
            request.Headers.ConnectionClose = true;
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
            using var response = client.Send(request, cancel);
            using var reader = new StreamReader(response.Content.ReadAsStream(cancel));
            string body = reader.ReadToEnd().Trim();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return (null, $"POST /gc answered {(int)response.StatusCode}{(response.StatusCode == HttpStatusCode.NotFound ? " (was the app started with --gc-endpoint?)" : "")}");
            }
            return long.TryParse(body, NumberStyles.None, CultureInfo.InvariantCulture, out long bytes)
                ? (bytes, null)
                : (null, $"POST /gc answered '{(body.Length > 60 ? body[..60] : body)}', not a byte count");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or OperationCanceledException or IOException or SocketException)
        {
            return (null, cancel.IsCancellationRequested ? "cancelled" : $"POST /gc failed: {ex.Message}");
        }
    }
}
