using System.Collections.Concurrent;
using BadRequest = Microsoft.AspNetCore.Http.BadHttpRequestException;

namespace Uring.Transport.Tests;

/// <summary>
/// Seeded fuzzing on raw sockets: valid requests cut at random points, random bytes, requests that
/// are certainly malformed, and randomly mutated requests. A bad case gets 4xx or a close, a good one
/// its exact answer, and the server never throws out of a loop (the disposal checks the logs).
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private const int Cases = 10_000;
    private const int Workers = 16;
    private const int Seed = 2025;
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(10);

    private enum Kind { SplitValid, RandomBytes, ValidHeadRandomTail, Malformed, Mutated }

    [Theory, Engines]
    public async Task Ten_thousand_split_random_and_malformed_requests_get_an_answer_or_a_close_and_the_server_keeps_serving(UringEngine engine)
    {
        await using var server = await TestServer.StartAsync(engine, app => app.Run(HashBodyAsync), output);
        var failures = new ConcurrentQueue<string>();
        var tally = new ConcurrentDictionary<string, int>();

        await Task.WhenAll(Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            RawConnection? keepAlive = null; // split valid requests share one connection per worker
            try
            {
                for (int index = w; index < Cases; index += Workers)
                {
                    var random = new Random(Seed * 100_003 + index); // case by case reproducible
                    Kind kind = PickKind(index);
                    try
                    {
                        string outcome = kind == Kind.SplitValid
                            ? await RunSplitValidAsync(keepAlive ??= await server.ConnectRawAsync(), random)
                            : await RunOneShotAsync(server, kind, random);
                        tally.AddOrUpdate($"{kind}: {outcome}", 1, (_, n) => n + 1);
                    }
                    catch (Exception e)
                    {
                        failures.Enqueue($"case {index} ({kind}, seed {Seed}): {e.GetType().Name}: {e.Message}");
                        keepAlive?.Dispose();
                        keepAlive = null;
                    }
                }
            }
            finally
            {
                keepAlive?.Dispose();
            }
            await ServerResources.AssertServesAsync(server); // and a good request on a new connection still works
        }))).WaitAsync(TimeSpan.FromSeconds(120));

        foreach (var (outcome, count) in tally.OrderBy(t => t.Key)) output.WriteLine($"{count,6} x {outcome}");
        foreach (string failure in failures.Skip(10).Take(100)) output.WriteLine(failure);
        Assert.True(failures.IsEmpty, $"{failures.Count} of {Cases} cases failed:{Environment.NewLine}{string.Join(Environment.NewLine, failures.Take(10))}");
        await ServerResources.AssertServesAsync(server);
    }

    private static Kind PickKind(int index) => (index % 20) switch
    {
        < 8 => Kind.SplitValid,
        < 12 => Kind.RandomBytes,
        < 14 => Kind.ValidHeadRandomTail,
        < 17 => Kind.Malformed,
        _ => Kind.Mutated,
    };

    /// <summary>The app: GET /plaintext as everywhere; any other path and method: reads the whole body and answers its length and hash.</summary>
    private static async Task HashBodyAsync(HttpContext context)
    {
        if (context.Request.Path == "/plaintext")
        {
            await TestData.WriteText(context, "Hello, World!");
            return;
        }
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        try
        {
            var buffer = new byte[4096];
            for (int n; (n = await context.Request.Body.ReadAsync(buffer)) > 0; total += n)
                hash.AppendData(buffer, 0, n);
        }
        catch (IOException e)
        {
            // A body that breaks off or is malformed (BadHttpRequestException, or a bare IOException
            // for an overflowing chunk size): answer it as Kestrel would, without the "unhandled
            // exception" error Kestrel logs when one escapes the app.
            context.Response.StatusCode = e is BadRequest bad ? bad.StatusCode : StatusCodes.Status400BadRequest;
            return;
        }
        await TestData.WriteText(context, $"{total} {Convert.ToHexString(hash.GetHashAndReset())[..16]}");
    }

    // ---- a valid request, cut at random points, on a kept-alive connection ---------------------

    private static async Task<string> RunSplitValidAsync(RawConnection connection, Random random)
    {
        (byte[] request, byte[] body) = ValidRequest(random);
        await SendSplitAsync(connection, request, random);
        RawResponse response = await connection.ReadResponseAsync().WaitAsync(CaseTimeout);
        Assert.Equal(200, response.StatusCode);
        Assert.Equal($"{body.Length} {Convert.ToHexString(SHA256.HashData(body))[..16]}", response.BodyText);
        return "200";
    }

    /// <summary>GET or POST with a Content-Length or chunked body of 0 to 4 KiB and a few extra headers.</summary>
    private static (byte[] Request, byte[] Body) ValidRequest(Random random)
    {
        var head = new StringBuilder();
        byte[] body = random.Next(3) == 0 ? [] : TestData.Random(random.Next(0, 4096), random.Next());
        bool chunked = body.Length > 0 && random.Next(2) == 0;
        head.Append(body.Length > 0 ? "POST" : "GET").Append(" /fuzz/").Append(random.Next(1000)).Append("?q=").Append(random.Next()).Append(" HTTP/1.1\r\n");
        head.Append("Host: localhost\r\n");
        for (int i = random.Next(4); i > 0; i--) head.Append("X-Fuzz-").Append(i).Append(": ").Append(new string('v', random.Next(1, 200))).Append("\r\n");
        if (body.Length > 0) head.Append(chunked ? "Transfer-Encoding: chunked\r\n" : $"Content-Length: {body.Length}\r\n");
        head.Append("\r\n");

        var request = new MemoryStream();
        request.Write(Encoding.ASCII.GetBytes(head.ToString()));
        if (!chunked)
        {
            request.Write(body);
        }
        else
        {
            for (int at = 0; at < body.Length;)
            {
                int n = Math.Min(body.Length - at, random.Next(1, 1500));
                request.Write(Encoding.ASCII.GetBytes($"{n:x}\r\n"));
                request.Write(body, at, n);
                request.Write("\r\n"u8);
                at += n;
            }
            request.Write("0\r\n\r\n"u8);
        }
        return (request.ToArray(), body);
    }

    private static async Task SendSplitAsync(RawConnection connection, byte[] bytes, Random random)
    {
        int[] cuts = Enumerable.Range(0, random.Next(0, 8)).Select(_ => random.Next(bytes.Length + 1)).Append(0).Append(bytes.Length).Distinct().Order().ToArray();
        for (int i = 0; i + 1 < cuts.Length; i++)
            await connection.SendAsync(bytes.AsMemory(cuts[i], cuts[i + 1] - cuts[i]));
    }

    // ---- bad input, one connection per case --------------------------------------------------

    /// <summary>
    /// Sends the case's bytes (cut at random points), half-closes, and reads to the server's end.
    /// Every answer must be well-formed HTTP; which statuses are allowed depends on the kind.
    /// </summary>
    private static async Task<string> RunOneShotAsync(TestServer server, Kind kind, Random random)
    {
        (byte[] bytes, int validBefore) = kind switch
        {
            Kind.RandomBytes => (TestData.Random(random.Next(1, 2048), random.Next()), 0),
            Kind.ValidHeadRandomTail => (Concat(ValidRequest(random).Request, TestData.Random(random.Next(1, 512), random.Next())), 1),
            Kind.Malformed => Malformed(random),
            _ => (Mutate(ValidRequest(random).Request, random), -1),
        };

        using RawConnection connection = await server.ConnectRawAsync();
        try
        {
            await SendSplitAsync(connection, bytes, random);
            connection.Socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
        {
            // Kestrel answered and closed before all was sent: fine, read what it said.
        }
        (byte[] answer, string end) = await ReadToEndAsync(connection.Socket);
        List<int> statuses = ParseResponses(answer);

        // Random bytes and malformed requests: only errors. A valid head with a random tail: its
        // answer (200), then errors. A mutated request may still be valid: anything goes, but it ends.
        if (validBefore >= 0)
        {
            for (int i = 0; i < statuses.Count; i++)
            {
                bool allowed = i < validBefore ? statuses[i] is 200 or >= 400 : statuses[i] >= 400;
                Assert.True(allowed, $"Answer {i} was {statuses[i]} to: {Escape(bytes)}");
            }
        }
        return statuses.Count == 0 ? end : string.Join(",", statuses) + " " + end;
    }

    /// <summary>Requests Kestrel must reject (4xx/5xx), sometimes after a valid pipelined request.</summary>
    private static (byte[] Bytes, int ValidBefore) Malformed(Random random)
    {
        string[] bad =
        [
            "G(T /fuzz HTTP/1.1\r\nHost: x\r\n\r\n",                                  // bad method token
            "GET /fuzz HTTP/1.7\r\nHost: x\r\n\r\n",                                  // unknown version
            "GET /fuzz HTTP/1.1\r\n\r\n",                                             // no Host
            "GET /fuzz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",                   // header without colon
            "GET /fuzz HTTP/1.1\r\nHost : x\r\n\r\n",                                 // space before colon
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",          // bad Content-Length
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",     // body breaks off (FIN)
            "POST /fuzz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", // chunk breaks off
            "GET /fuzz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",             // obsolete line folding
            "GET /fuzz HTTP/1.1\rHost: x\r\n\r\n",                                    // bare CR
            "GET /fuzz HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n",                   // NUL in a header value
            "GET http:/x HTTP/1.1\r\nHost: x\r\n\r\n",                                // bad absolute-form
            "GET /" + new string('a', 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n",         // request line over 8 KiB
            "GET /fuzz HTTP/1.1\r\nHost: x\r\n" + string.Concat(Enumerable.Range(0, 200).Select(i => $"X-{i}: {new string('h', 200)}\r\n")) + "\r\n", // headers over 32 KiB
        ];
        byte[] malformed = Encoding.Latin1.GetBytes(bad[random.Next(bad.Length)]);
        return random.Next(2) == 0 ? (malformed, 0) : (Concat(ValidRequest(random).Request, malformed), 1);
    }

    private static byte[] Mutate(byte[] request, Random random)
    {
        var bytes = new List<byte>(request);
        ReadOnlySpan<byte> hostile = "\0\r\n :\t\x7f\xff/%"u8;
        for (int m = random.Next(1, 5); m > 0 && bytes.Count > 1; m--)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(5))
            {
                case 0: bytes[at] = (byte)random.Next(256); break;
                case 1: bytes.Insert(at, hostile[random.Next(hostile.Length)]); break;
                case 2: bytes.RemoveAt(at); break;
                case 3: bytes.InsertRange(at, bytes.GetRange(at, Math.Min(bytes.Count - at, random.Next(1, 64)))); break;
                default: bytes.RemoveRange(at, bytes.Count - at); break; // truncate
            }
        }
        return bytes.ToArray();
    }

    /// <summary>What the server sent until it ended the connection, and how it ended it: FIN or RST.</summary>
    private static async Task<(byte[] Bytes, string End)> ReadToEndAsync(Socket socket)
    {
        using var cts = new CancellationTokenSource(CaseTimeout);
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            for (int n; (n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token)) > 0;)
                received.Write(buffer, 0, n);
            return (received.ToArray(), "FIN");
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Closing with unread input makes the server's kernel send RST, and an RST makes ours
            // drop what we had not read yet: possibly the answer.
            return (received.ToArray(), "RST");
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The server neither answered nor closed within {CaseTimeout.TotalSeconds} s of the client's FIN.");
        }
    }

    /// <summary>Status codes of the HTTP/1.1 responses in <paramref name="bytes"/>; each must be complete and well-formed.</summary>
    private static List<int> ParseResponses(byte[] bytes)
    {
        var statuses = new List<int>();
        string text = Encoding.Latin1.GetString(bytes);
        for (int at = 0; at < text.Length;)
        {
            int headEnd = text.IndexOf("\r\n\r\n", at, StringComparison.Ordinal);
            if (headEnd < 0) throw new InvalidDataException($"Incomplete response head: {Escape(bytes[at..])}");
            string[] lines = text[at..headEnd].Split("\r\n");
            string[] status = lines[0].Split(' ', 3);
            if (status.Length < 2 || status[0] != "HTTP/1.1" || !int.TryParse(status[1], out int code))
                throw new InvalidDataException($"Not a status line: '{lines[0]}'.");
            string? length = lines.Skip(1).Select(l => l.Split(':', 2)).FirstOrDefault(h => h[0].Equals("Content-Length", StringComparison.OrdinalIgnoreCase))?[1].Trim();
            at = headEnd + 4 + (length is null ? 0 : int.Parse(length));
            if (at > text.Length) throw new InvalidDataException($"Response {code} cut short: {text.Length - headEnd - 4} of {length} body bytes.");
            statuses.Add(code);
        }
        return statuses;
    }

    private static byte[] Concat(byte[] a, byte[] b) => [.. a, .. b];

    private static string Escape(byte[] bytes) =>
        string.Concat(bytes.Take(300).Select(b => b is >= 32 and < 127 ? ((char)b).ToString() : $"\\x{b:x2}")) + (bytes.Length > 300 ? "..." : "");
}
