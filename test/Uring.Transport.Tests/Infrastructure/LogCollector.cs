using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>Keeps every log entry the host writes, so a test can assert on what was logged.</summary>
internal sealed class LogCollector : ILoggerProvider
{
    public sealed record Entry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception)
    {
        public override string ToString() =>
            $"{Level} {Category}[{EventId.Id}{(EventId.Name is null ? "" : ":" + EventId.Name)}] {Message}" +
            (Exception is null ? "" : Environment.NewLine + "    " + Exception.ToString().Replace(Environment.NewLine, Environment.NewLine + "    "));
    }

    private readonly ConcurrentQueue<Entry> _entries = new();
    private readonly ConcurrentQueue<Func<Entry, bool>> _allowed = new();

    public IReadOnlyCollection<Entry> Entries => _entries;

    /// <summary>
    /// Errors the transport or Kestrel logged: anything at Error or above from the transport's own
    /// categories, and from ASP.NET Core (where Kestrel reports unhandled exceptions and broken connections).
    /// </summary>
    public IReadOnlyList<Entry> Errors() => _entries
        .Where(e => e.Level >= LogLevel.Error
            && (e.Category.StartsWith("Uring.Transport", StringComparison.Ordinal)
                || e.Category.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal))
            && !_allowed.Any(allow => allow(e)))
        .ToList();

    /// <summary>Stops <see cref="Errors"/> from counting entries that a test expects (Kestrel's own, say).</summary>
    public void Allow(Func<Entry, bool> expected) => _allowed.Enqueue(expected);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCollector owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._entries.Enqueue(new Entry(category, logLevel, eventId, formatter(state, exception), exception));
    }
}
