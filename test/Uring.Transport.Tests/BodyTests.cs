namespace Uring.Transport.Tests;

/// <summary>Large request and response bodies arrive byte-exact, also when the app reads slowly.</summary>
public sealed class BodyTests(ITestOutputHelper output)
{
    [Theory, Engines]
    public async Task Ten_MiB_upload_is_echoed_byte_exact(UringEngine engine)
    {
        const int Size = 10 * 1024 * 1024;
        await using var server = await TestServer.StartAsync(engine, app => app.MapPost("/echo", async context =>
        {
            context.Response.ContentLength = context.Request.ContentLength;
            await context.Request.Body.CopyToAsync(context.Response.Body);
        }), output);
        byte[] upload = TestData.Random(Size, seed: 5);
        using RawConnection connection = await server.ConnectRawAsync();

        // Send and receive at once: the echo starts before the upload ends, and neither side may
        // wait for the other to finish (a raw socket, because HttpClient's HTTP/1.1 waits for its
        // request body to be sent before it hands out the response).
        Task send = Task.Run(async () =>
        {
            await connection.SendAsync(RawConnection.Request("POST", "/echo", $"Content-Length: {Size}"));
            await connection.SendAsync(upload);
        });
        RawResponse response = await connection.ReadResponseAsync().WaitAsync(Limits.Step);
        await send.WaitAsync(Limits.Step);

        Assert.Equal(200, response.StatusCode);
        Assert.Equal(Size, response.Body.Length);
        Assert.Equal(TestData.Sha256(upload), TestData.Sha256(response.Body));
    }

    [Theory, Engines]
    public async Task Sixteen_MiB_download_is_byte_exact(UringEngine engine)
    {
        const int Size = 16 * 1024 * 1024, Chunk = 64 * 1024;
        byte[] expected = TestData.Random(Size, seed: 6);
        await using var server = await TestServer.StartAsync(engine, app => app.MapGet("/download", async context =>
        {
            // The app rebuilds the same seeded bytes and writes them a chunk at a time.
            byte[] data = TestData.Random(Size, seed: 6);
            context.Response.ContentLength = Size;
            for (int offset = 0; offset < Size; offset += Chunk)
                await context.Response.Body.WriteAsync(data.AsMemory(offset, Chunk));
        }), output);
        using HttpClient client = server.CreateClient();

        using HttpResponseMessage response = await client.GetAsync("download", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long received = 0;
        await using (Stream body = await response.Content.ReadAsStreamAsync())
        {
            var buffer = new byte[81920];
            for (int n; (n = await body.ReadAsync(buffer).AsTask().WaitAsync(Limits.Step)) > 0;)
            {
                hash.AppendData(buffer, 0, n);
                received += n;
            }
        }

        Assert.Equal(Size, received);
        Assert.Equal(TestData.Sha256(expected), Convert.ToHexString(hash.GetHashAndReset()));
    }

    [Theory, Engines]
    public async Task Slow_reader_with_small_MaxReadBufferSize_pauses_and_resumes_and_gets_every_byte(UringEngine engine)
    {
        const int Size = 4 * 1024 * 1024, MaxReadBufferSize = 64 * 1024, ReadSize = 8 * 1024;
        const int ProvidedBufferSize = 8 * 1024, ProvidedBufferCount = 32;
        // Receiving stops once the input holds MaxReadBufferSize; what the kernel had already received
        // by then lands on top: at most one batch, and one batch can never exceed the loop's provided
        // buffer ring (count x size), since every byte received sits in one of its buffers until copied.
        // Without the pause the input would soon hold megabytes, since the app reads far slower than
        // loopback delivers. (Kestrel's Sockets transport stays within 68 KiB.)
        const int AllowedBuffered = MaxReadBufferSize + ProvidedBufferCount * ProvidedBufferSize;
        await using var server = await TestServer.StartAsync(engine, app => app.MapPost("/slow-hash", async context =>
        {
            var reader = context.Request.BodyReader;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long total = 0, maxBuffered = 0;
            while (true)
            {
                var result = await reader.ReadAsync();
                // For an HTTP/1.1 body this is what the transport holds unread (up to the body's end).
                maxBuffered = Math.Max(maxBuffered, result.Buffer.Length);
                var take = result.Buffer.Slice(0, Math.Min(result.Buffer.Length, ReadSize));
                foreach (ReadOnlyMemory<byte> segment in take) hash.AppendData(segment.Span);
                total += take.Length;
                reader.AdvanceTo(take.End);
                if (result.IsCompleted && take.Length == result.Buffer.Length) break;
                await Task.Delay(2); // ~512 reads: 1 to 2 s in all
            }
            await TestData.WriteText(context, $"{total} {Convert.ToHexString(hash.GetHashAndReset())} {maxBuffered}");
        }), output, new ServerSetup
        {
            Transport = o =>
            {
                o.MaxReadBufferSize = MaxReadBufferSize;
                o.ProvidedBufferSize = ProvidedBufferSize;
                o.ProvidedBufferCount = ProvidedBufferCount;
            },
        });
        byte[] upload = TestData.Random(Size, seed: 12);
        using HttpClient client = server.CreateClient();

        using HttpResponseMessage response = await client.PostAsync("slow-hash", new ByteArrayContent(upload));
        string[] answer = (await response.Content.ReadAsStringAsync()).Split(' ');

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Size.ToString(), answer[0]);
        Assert.Equal(TestData.Sha256(upload), answer[1]);
        long mostBuffered = long.Parse(answer[2]);
        output.WriteLine($"most bytes buffered at once: {mostBuffered}");
        Assert.True(mostBuffered is > 0 and <= AllowedBuffered,
            $"With MaxReadBufferSize {MaxReadBufferSize} the transport held {mostBuffered} unread bytes at once (allowed: {AllowedBuffered}).");
    }
}
