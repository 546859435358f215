using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Uring.Soak;

/// <summary>The head of an HTTP/1.1 response: status, Content-Length, whether the server closes after it.</summary>
internal readonly record struct ResponseHead(int Status, long ContentLength, bool Close);

/// <summary>
/// HTTP/1.1 on a raw socket, so the soak controls what HttpClient hides: pipelining, resets,
/// closing mid-response, reading a body in slices. Every response of the sample app carries a
/// Content-Length; anything else is a protocol error here.
/// </summary>
internal sealed class WireConnection : IDisposable
{
    private const int MaxHead = 64 * 1024;
    private readonly Socket _socket;
    private readonly PipeReader _reader;

    private WireConnection(Socket socket)
    {
        _socket = socket;
        _reader = PipeReader.Create(new NetworkStream(socket, ownsSocket: false));
    }

    public static async Task<WireConnection> ConnectAsync(IPEndPoint server, CancellationToken cancellationToken)
    {
        var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(server, cancellationToken);
            return new WireConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static string Get(string path) => $"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n";

    public static string PostHead(string path, long contentLength) =>
        $"POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Length: {contentLength}\r\n\r\n";

    public Task SendAsync(string text, CancellationToken cancellationToken) => SendAsync(Encoding.ASCII.GetBytes(text), cancellationToken);

    public async Task SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
            bytes = bytes[await _socket.SendAsync(bytes, SocketFlags.None, cancellationToken)..];
    }

    public async Task<ResponseHead> ReadHeadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult read = await _reader.ReadAsync(cancellationToken);
            ReadOnlySequence<byte> buffer = read.Buffer;
            SequencePosition? end = FindHeadEnd(buffer);
            if (end is SequencePosition headEnd)
            {
                ResponseHead head = ParseHead(Encoding.ASCII.GetString(buffer.Slice(0, headEnd)));
                _reader.AdvanceTo(buffer.GetPosition(4, headEnd)); // past the blank line
                return head;
            }
            if (read.IsCompleted) throw new IOException($"the server closed the connection in the response head ({buffer.Length} bytes)");
            if (buffer.Length > MaxHead) throw new InvalidDataException("response head over 64 KiB");
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Reads <paramref name="length"/> body bytes, handing each slice to <paramref name="slice"/> (which checks it).</summary>
    public async Task ReadBodyAsync(long length, Action<ReadOnlySpan<byte>> slice, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            ReadResult read = await _reader.ReadAsync(cancellationToken);
            ReadOnlySequence<byte> take = read.Buffer.Slice(0, Math.Min(length, read.Buffer.Length));
            foreach (ReadOnlyMemory<byte> segment in take) slice(segment.Span);
            length -= take.Length;
            _reader.AdvanceTo(take.End);
            if (length > 0 && read.IsCompleted) throw new IOException($"the server closed the connection {length} body bytes short");
        }
    }

    /// <summary>A whole response; the body is kept (small bodies only).</summary>
    public async Task<(ResponseHead Head, byte[] Body)> ReadResponseAsync(CancellationToken cancellationToken)
    {
        ResponseHead head = await ReadHeadAsync(cancellationToken);
        var body = new byte[head.ContentLength];
        int at = 0;
        await ReadBodyAsync(head.ContentLength, s =>
        {
            s.CopyTo(body.AsSpan(at));
            at += s.Length;
        }, cancellationToken);
        return (head, body);
    }

    /// <summary>Closes with SO_LINGER 0: the kernel sends RST instead of FIN.</summary>
    public void Reset()
    {
        _socket.LingerState = new LingerOption(true, 0);
        _socket.Close();
    }

    public void Dispose()
    {
        _reader.Complete();
        _socket.Dispose();
    }

    private static SequencePosition? FindHeadEnd(ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        return reader.TryReadTo(out ReadOnlySequence<byte> head, "\r\n\r\n"u8, advancePastDelimiter: false) ? head.End : null;
    }

    private static ResponseHead ParseHead(string head)
    {
        string[] lines = head.Split("\r\n");
        string[] status = lines[0].Split(' ', 3);
        if (status.Length < 2 || status[0] != "HTTP/1.1" || !int.TryParse(status[1], out int code))
            throw new InvalidDataException($"not an HTTP/1.1 status line: '{lines[0]}'");
        long length = -1;
        bool close = false;
        foreach (string line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) throw new InvalidDataException($"bad header line: '{line}'");
            string name = line[..colon], value = line[(colon + 1)..].Trim();
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) length = long.Parse(value);
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase)) close = value.Equals("close", StringComparison.OrdinalIgnoreCase);
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)) throw new InvalidDataException($"unexpected Transfer-Encoding: {value}");
        }
        if (length < 0) throw new InvalidDataException($"response {code} without Content-Length");
        return new ResponseHead(code, length, close);
    }
}
