namespace Uring.Transport.Tests.Infrastructure;

/// <summary>A parsed HTTP/1.1 response read off a raw socket.</summary>
internal sealed record RawResponse(int StatusCode, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string? Header(string name) => Headers.TryGetValue(name, out string? value) ? value : null;
}

/// <summary>
/// An HTTP/1.1 client on a raw TCP socket, for what HttpClient hides: pipelining, half-close, RST,
/// exact byte counts. Responses are framed by Content-Length or chunked encoding; every wait is bounded.
/// </summary>
internal sealed class RawConnection : IDisposable
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    private RawConnection(Socket socket) => Socket = socket;

    public Socket Socket { get; }

    /// <summary>Connects; <paramref name="configure"/> sets socket options first (e.g. a small receive buffer).</summary>
    public static async Task<RawConnection> ConnectAsync(EndPoint endPoint, Action<Socket>? configure = null)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            configure?.Invoke(socket);
            await socket.ConnectAsync(endPoint, Limits.StepToken());
            return new RawConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A request line and headers for <paramref name="path"/>, ending the header block.</summary>
    public static string Request(string method, string path, params string[] headers) =>
        $"{method} {path} HTTP/1.1\r\nHost: localhost\r\n" + string.Concat(headers.Select(h => h + "\r\n")) + "\r\n";

    public Task SendAsync(string text) => SendAsync(Encoding.ASCII.GetBytes(text));

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        using var cts = new CancellationTokenSource(Limits.Step);
        while (!bytes.IsEmpty)
        {
            int sent = await Socket.SendAsync(bytes, SocketFlags.None, cts.Token);
            bytes = bytes.Slice(sent);
        }
    }

    /// <summary>Reads one response; throws if the server closes before it is complete.</summary>
    public async Task<RawResponse> ReadResponseAsync()
    {
        using var cts = new CancellationTokenSource(Limits.Step);
        CancellationToken token = cts.Token;

        string statusLine = await ReadLineAsync(token);
        string[] parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(parts[1], out int status))
            throw new InvalidDataException($"Not an HTTP/1.x status line: '{statusLine}'.");

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (string line; (line = await ReadLineAsync(token)).Length > 0;)
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) throw new InvalidDataException($"Bad header line: '{line}'.");
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        byte[] body;
        if (headers.TryGetValue("Transfer-Encoding", out string? encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var chunks = new MemoryStream();
            while (true)
            {
                string sizeLine = await ReadLineAsync(token);
                int size = Convert.ToInt32(sizeLine.Split(';')[0].Trim(), 16);
                if (size == 0)
                {
                    while ((await ReadLineAsync(token)).Length > 0) { } // trailers
                    break;
                }
                chunks.Write(await ReadExactlyAsync(size, token));
                if ((await ReadLineAsync(token)).Length != 0) throw new InvalidDataException("Chunk not followed by CRLF.");
            }
            body = chunks.ToArray();
        }
        else if (headers.TryGetValue("Content-Length", out string? length))
        {
            body = await ReadExactlyAsync(int.Parse(length), token);
        }
        else
        {
            throw new InvalidDataException($"Response {status} has neither Content-Length nor chunked encoding.");
        }
        return new RawResponse(status, headers, body);
    }

    /// <summary>
    /// Waits for the server to end the connection and says how: "FIN" (receive returned 0) or
    /// "RST" (receive failed with ConnectionReset). Fails if data arrives instead.
    /// </summary>
    public async Task<string> ReadEndAsync()
    {
        if (_end > _start)
            Assert.Fail($"Expected the connection to end, but {_end - _start} more bytes were buffered.");
        using var cts = new CancellationTokenSource(Limits.Step);
        try
        {
            int n = await Socket.ReceiveAsync(_buffer, SocketFlags.None, cts.Token);
            if (n != 0)
                Assert.Fail($"Expected the connection to end, received {n} bytes: '{Encoding.ASCII.GetString(_buffer, 0, Math.Min(n, 200))}'.");
            return "FIN";
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return "RST";
        }
    }

    /// <summary>Closes with SO_LINGER 0: the kernel sends RST instead of FIN.</summary>
    public void Reset()
    {
        Socket.LingerState = new LingerOption(true, 0);
        Socket.Close();
    }

    public void Dispose() => Socket.Dispose();

    private async Task<string> ReadLineAsync(CancellationToken token)
    {
        while (true)
        {
            int at = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8);
            if (at >= 0)
            {
                string line = Encoding.ASCII.GetString(_buffer, _start, at);
                _start += at + 2;
                return line;
            }
            if (_start == 0 && _end == _buffer.Length) throw new InvalidDataException("Header line longer than 64 KiB.");
            await FillAsync(token);
        }
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken token)
    {
        var result = new byte[count];
        int have = Math.Min(count, _end - _start);
        _buffer.AsSpan(_start, have).CopyTo(result);
        _start += have;
        while (have < count)
        {
            int n = await Socket.ReceiveAsync(result.AsMemory(have), SocketFlags.None, token);
            if (n == 0) throw new IOException($"The server closed the connection after {have} of {count} body bytes.");
            have += n;
        }
        return result;
    }

    private async Task FillAsync(CancellationToken token)
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        int n = await Socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, token);
        if (n == 0) throw new IOException($"The server closed the connection mid-response ({_end} bytes pending).");
        _end += n;
    }
}
