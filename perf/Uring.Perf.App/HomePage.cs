using System.Globalization;
using System.Text;
using Uring.Transport;

namespace Uring.Perf.App;

/// <summary>
/// GET /: a short text page saying what serves the connection (the engine and I/O loop, from the
/// public <see cref="IUringConnectionFeature"/>), how many I/O loops the transport runs and which
/// kernel features it uses (from its start-up log line, <see cref="EngineLog"/>), and the endpoints.
/// </summary>
internal sealed class HomePage(EngineLog engineLog)
{
    /// <summary>The app's endpoints (the program's header points here).</summary>
    public const string Endpoints = """
          GET /                     -> this page                       text/plain
          GET /plaintext            -> "Hello, World!"                 text/plain
          GET /json                 -> {"message":"Hello, World!"}    application/json (source-generated System.Text.Json)
          POST /echo                -> the request body                application/octet-stream
          GET /download?size=N&seed=S -> N bytes from new Random(S)     application/octet-stream (the soak test's downloads)
          GET /bytes?size=N         -> N bytes of one fixed pattern    application/octet-stream (the large-response benchmark)
          POST /upload              -> the body's length, as text      text/plain (the upload benchmark: the body is read and dropped)
          GET /diag                 -> the transport's meter, RSS, fds  application/json (only with --diagnostics)
          POST /gc                  -> a full, compacting, aggressive   text/plain (only with --gc-endpoint: a benchmark aid,
                                       GC; then the managed heap size      the idle scenario's GC-normalized memory figure)
                                       in bytes (GC.GetTotalMemory)
          anything else             -> 404
        """;

    public Task WriteAsync(HttpContext context)
    {
        var page = new StringBuilder();
        page.AppendLine("Uring.Transport sample app (perf/Uring.Perf.App)").AppendLine();
        if (context.Features.Get<IUringConnectionFeature>() is { } connection)
        {
            page.AppendLine(CultureInfo.InvariantCulture, $"This connection: Uring.Transport, engine {connection.Engine}, I/O loop {connection.LoopIndex}");
            if (engineLog.Selected is { } selected)
            {
                page.AppendLine(CultureInfo.InvariantCulture, $"I/O loops: {selected.RingCount}");
                page.AppendLine(CultureInfo.InvariantCulture, $"Engine chosen, kernel features: {selected.Reason}");
            }
            else
            {
                page.AppendLine("I/O loops, kernel features: unknown (the transport's start-up line was not seen)");
            }
        }
        else
        {
            page.AppendLine("This connection: Kestrel's Sockets transport, not Uring.Transport (--transport sockets)");
        }
        page.AppendLine().AppendLine("Endpoints:").AppendLine(Endpoints);

        byte[] body = Encoding.UTF8.GetBytes(page.ToString());
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/plain; charset=utf-8";
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body).AsTask();
    }
}

/// <summary>
/// Keeps the loop count and the reason (with the kernel features) from the transport's start-up
/// line (category "Uring.Transport", event 1: "engine {Engine}, {RingCount} I/O loop(s). {Reason}"),
/// read through the logging API only: they are in no other public API of the transport.
/// </summary>
internal sealed class EngineLog : ILoggerProvider, ILogger
{
    public const string Category = "Uring.Transport";

    private const int EngineSelectedEvent = 1;

    /// <summary>The line's values, once the transport has logged it.</summary>
    public sealed record Line(int RingCount, string Reason);

    private volatile Line? _selected;

    public Line? Selected => _selected;

    public ILogger CreateLogger(string categoryName) =>
        string.Equals(categoryName, Category, StringComparison.Ordinal) ? this : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id != EngineSelectedEvent || state is not IReadOnlyList<KeyValuePair<string, object?>> values)
        {
            return;
        }
        string? Value(string name) => values.FirstOrDefault(v => v.Key == name).Value?.ToString();
        if (int.TryParse(Value("RingCount"), CultureInfo.InvariantCulture, out int rings))
        {
            _selected = new Line(rings, Value("Reason") ?? "");
        }
    }

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public void Dispose()
    {
    }
}
