// TechEmpower-style benchmark app for Uring.Transport.
//
//   GET /plaintext            -> "Hello, World!"                 text/plain
//   GET /json                 -> {"message":"Hello, World!"}    application/json (source-generated System.Text.Json)
//   POST /echo                -> the request body                application/octet-stream
//   GET /download?size=N&seed=S -> N bytes from new Random(S)     application/octet-stream (the soak test's downloads)
//   GET /bytes?size=N         -> N bytes of one fixed pattern    application/octet-stream (the large-response benchmark)
//   POST /upload              -> the body's length, as text      text/plain (the upload benchmark: the body is read and dropped)
//   GET /diag                 -> the transport's meter, RSS, fds  application/json (only with --diagnostics)
//   anything else             -> 404
//
// Usage: Uring.Perf.App [--transport sockets|uring|uring-epoll] [--inline] [--urls URLS] [--rings N] [--diagnostics]

using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Uring.Native;
using Uring.Transport;

namespace Uring.Perf.App;

public static class Program
{
    private const string Usage =
        "usage: Uring.Perf.App [--transport sockets|uring|uring-epoll] [--inline] [--urls URLS] [--rings N] [--diagnostics]\n" +
        "  --transport  sockets = Kestrel's Sockets transport; uring = io_uring transport (engine Auto);\n" +
        "               uring-epoll = io_uring transport forced onto its epoll engine. Default: uring.\n" +
        "  --inline     run request processing inline on the I/O threads (UnsafePreferInlineScheduling).\n" +
        "  --urls       semicolon-separated listen URLs. Default: http://127.0.0.1:5000\n" +
        "  --rings N    uring: RingCount (I/O loops); sockets: IOQueueCount. Default: transport's own.\n" +
        "  --diagnostics  serve GET /diag (the Uring.Transport meter's values, RSS, open fds) and log\n" +
        "               warnings and errors from every category (the soak test reads both).";

    private sealed record Settings(string Transport, bool Inline, string Urls, int? Rings, bool Diagnostics);

    private static TransportDiagnostics? s_diagnostics;

    public static async Task<int> Main(string[] args)
    {
        if (!CommandLine.TryParse(args, Usage, ParseArgs, out Settings? settings, out int exitCode))
            return exitCode;

        // Command-line args are parsed here, not handed to the host's configuration.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });

        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        // Everything off (also overriding any Logging:LogLevel:Default from the environment), except
        // the transport's own start-up events (engine chosen and why) and the host's lifetime lines.
        builder.Logging.SetMinimumLevel(LogLevel.None);
        builder.Logging.AddFilter((string?)null, LogLevel.None);
        builder.Logging.AddFilter("Uring.Transport", LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        if (settings.Diagnostics)
        {
            // Kestrel's errors (an unhandled exception, a connection that failed) must show.
            builder.Logging.AddFilter((string?)null, LogLevel.Warning);
            builder.Logging.AddFilter("Uring.Transport", LogLevel.Information);
            s_diagnostics = new TransportDiagnostics();
        }

        builder.WebHost.UseUrls(settings.Urls);
        builder.WebHost.ConfigureKestrel(o =>
        {
            o.AddServerHeader = false;
            o.AllowSynchronousIO = false;
        });

        bool uring = settings.Transport != "sockets";
        if (uring)
        {
            builder.WebHost.UseUringTransport(o =>
            {
                o.Engine = settings.Transport == "uring-epoll" ? RingEngine.Epoll : RingEngine.Auto;
                if (settings.Inline)
                {
                    o.UnsafePreferInlineScheduling = true;
                }
                if (settings.Rings is int rings)
                {
                    o.RingCount = rings;
                }
            });
        }
        else if (settings.Inline || settings.Rings is not null)
        {
            builder.WebHost.UseSockets(o =>
            {
                if (settings.Inline)
                {
                    o.UnsafePreferInlineScheduling = true;
                }
                if (settings.Rings is int rings)
                {
                    o.IOQueueCount = rings;
                }
            });
        }

        var app = builder.Build();
        app.Run(Handle);

        Console.WriteLine($"PID {Environment.ProcessId}");
        Console.WriteLine($"transport {(uring ? "uring" : "sockets")}");
        if (uring)
        {
            var options = app.Services.GetRequiredService<IOptions<UringTransportOptions>>().Value;
            string? envEngine = Environment.GetEnvironmentVariable("URING_TRANSPORT_ENGINE");
            Console.WriteLine($"engine requested {options.Engine}" +
                (string.IsNullOrEmpty(envEngine) ? "" : $" (URING_TRANSPORT_ENGINE={envEngine} overrides)") +
                "; engine chosen: see the Uring.Transport log line");
            Console.WriteLine($"rings {options.RingCount}");
        }
        Console.WriteLine($"inline {settings.Inline}");

        await app.StartAsync();

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
        Console.WriteLine($"listening on {(addresses is { Count: > 0 } ? string.Join(';', addresses) : settings.Urls)}");

        await app.WaitForShutdownAsync();
        return 0;
    }

    /// <summary>Parses the command line; null means help was asked for. Throws ArgumentException on bad input.</summary>
    private static Settings? ParseArgs(string[] args)
    {
        string transport = "uring";
        bool inline = false;
        string urls = "http://127.0.0.1:5000";
        int? rings = null;
        bool diagnostics = false;

        var line = new CommandLine(args);
        while (line.MoveNext())
        {
            switch (line.Name)
            {
                case "-h" or "--help":
                    return null;
                case "--transport":
                    transport = line.Value();
                    if (transport is not ("sockets" or "uring" or "uring-epoll"))
                        throw new ArgumentException($"unknown transport '{transport}' (expected sockets, uring or uring-epoll)");
                    break;
                case "--inline": inline = line.Flag(); break;
                case "--diagnostics": diagnostics = line.Flag(); break;
                case "--urls":
                    urls = line.Value();
                    if (string.IsNullOrWhiteSpace(urls)) throw new ArgumentException("--urls must not be empty");
                    break;
                case "--rings": rings = line.Int(1); break;
                default: throw line.Unknown();
            }
        }

        return new Settings(transport, inline, urls, rings, diagnostics);
    }

    // ---- request handling -------------------------------------------------------------------

    private static readonly byte[] s_plaintextBody = Encoding.UTF8.GetBytes("Hello, World!");

    private static Task Handle(HttpContext context)
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
                byte[] body = JsonSerializer.SerializeToUtf8Bytes(new JsonMessage("Hello, World!"), AppJsonContext.Default.JsonMessage);
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
            if (string.Equals(path, "/diag", StringComparison.Ordinal) && s_diagnostics is not null)
            {
                return s_diagnostics.WriteAsync(response);
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

public readonly record struct JsonMessage([property: JsonPropertyName("message")] string Message);

[JsonSerializable(typeof(JsonMessage))]
internal sealed partial class AppJsonContext : JsonSerializerContext
{
}
