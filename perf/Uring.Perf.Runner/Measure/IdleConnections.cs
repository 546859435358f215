using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Uring.Perf.Runner.Measure;

/// <summary>
/// The idle scenario's client: opens N keep-alive HTTP/1.1 connections to 127.0.0.1:port from
/// this process, sends one GET on each, reads its whole response, and keeps the connection
/// open and idle until <see cref="Dispose"/> closes them all. Bounded: at most
/// <c>parallel</c> connections are being opened at a time (the listen backlog is Kestrel's 512),
/// and the whole opening stops at its deadline.
/// </summary>
internal sealed class IdleConnections : IDisposable
{
    private readonly List<Socket> _open;

    private IdleConnections(List<Socket> open, int failed, string? firstError, double seconds)
    {
        _open = open;
        Failed = failed;
        FirstError = firstError;
        Seconds = seconds;
    }

    /// <summary>Connections open, each of which got a complete 200 response.</summary>
    public int Opened => _open.Count;

    /// <summary>Connections that did not open or were not answered (in time).</summary>
    public int Failed { get; }

    public string? FirstError { get; }

    /// <summary>How long opening them took.</summary>
    public double Seconds { get; }

    public static IdleConnections Open(int port, string path, int count, int parallel, TimeSpan timeout, CancellationToken stop)
    {
        using var deadline = new CancellationTokenSource(timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, stop);
        CancellationToken token = linked.Token;
        byte[] request = Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}\r\n\r\n");
        var endpoint = new IPEndPoint(IPAddress.Loopback, port);
        var sockets = new Socket?[count];
        var errors = new ConcurrentQueue<string>();
        int failed = 0;
        int next = -1;

        async Task Worker()
        {
            byte[] buffer = new byte[4096];
            while (true)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= count)
                {
                    return;
                }
                if (token.IsCancellationRequested)
                {
                    Interlocked.Increment(ref failed);
                    continue;
                }
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                string? error;
                try
                {
                    await socket.ConnectAsync(endpoint, token).ConfigureAwait(false);
                    await socket.SendAsync(request, SocketFlags.None, token).ConfigureAwait(false);
                    error = await ReadResponseAsync(socket, buffer, token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    error = stop.IsCancellationRequested ? "cancelled" : $"not open and answered within {timeout.TotalSeconds:0} s";
                }
                catch (SocketException ex)
                {
                    error = $"{ex.SocketErrorCode}: {ex.Message}";
                }
                if (error is null)
                {
                    sockets[i] = socket;
                    continue;
                }
                Interlocked.Increment(ref failed);
                if (errors.Count < 5)
                {
                    errors.Enqueue(error);
                }
                socket.Dispose();
            }
        }

        var clock = Stopwatch.StartNew();
        Task.WaitAll([.. Enumerable.Range(0, Math.Max(1, Math.Min(parallel, count))).Select(_ => Task.Run(Worker))]);
        double seconds = clock.Elapsed.TotalSeconds;
        var open = sockets.Where(s => s is not null).Select(s => s!).ToList();
        return new IdleConnections(open, failed, errors.TryPeek(out string? first) ? first : null, seconds);
    }

    /// <summary>Reads one response; null when it was a complete 200 (headers, then Content-Length bytes of body).</summary>
    private static async Task<string?> ReadResponseAsync(Socket socket, byte[] buffer, CancellationToken token)
    {
        int filled = 0;
        int headerEnd = -1;
        long bodyLength = -1;
        while (true)
        {
            if (filled == buffer.Length)
            {
                return $"the response is larger than {buffer.Length} bytes";
            }
            int n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, token).ConfigureAwait(false);
            if (n == 0)
            {
                return "the server closed the connection before the end of the response";
            }
            filled += n;
            if (headerEnd < 0)
            {
                headerEnd = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8);
                if (headerEnd < 0)
                {
                    continue;
                }
                string head = Encoding.ASCII.GetString(buffer, 0, headerEnd);
                if (!head.StartsWith("HTTP/1.1 200 ", StringComparison.Ordinal))
                {
                    return $"unexpected response: {head.Split('\r')[0]}";
                }
                foreach (string line in head.Split("\r\n"))
                {
                    if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)
                        && long.TryParse(line.AsSpan("Content-Length:".Length).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long length))
                    {
                        bodyLength = length;
                    }
                    if (line.StartsWith("Connection:", StringComparison.OrdinalIgnoreCase) && line.Contains("close", StringComparison.OrdinalIgnoreCase))
                    {
                        return "the server answered with Connection: close";
                    }
                }
                if (bodyLength < 0)
                {
                    return "the response has no Content-Length";
                }
            }
            if (filled >= headerEnd + 4 + bodyLength)
            {
                return null;
            }
        }
    }

    /// <summary>Closes every connection (a normal close: FIN).</summary>
    public void Dispose()
    {
        foreach (var socket in _open)
        {
            socket.Dispose();
        }
        _open.Clear();
    }
}
