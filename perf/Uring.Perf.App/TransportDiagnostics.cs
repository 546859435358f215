using System.Buffers;
using System.Diagnostics.Metrics;
using System.Text.Json;

namespace Uring.Perf.App;

/// <summary>
/// GET /diag (with --diagnostics): the Uring.Transport meter's instruments, read on demand through
/// a <see cref="MeterListener"/>, and the process's RSS and open fd count, as one JSON object:
/// <c>{"pid":..,"rssBytes":..,"openFds":..,"uring.transport.connections":..,...}</c>.
/// </summary>
internal sealed class TransportDiagnostics
{
    private const string MeterName = "Uring.Transport";

    private readonly object _gate = new();
    private readonly MeterListener _listener = new();
    private readonly SortedDictionary<string, long> _values = new(StringComparer.Ordinal);

    public TransportDiagnostics()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        // Called back from RecordObservableInstruments, under _gate.
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => _values[instrument.Name] = value);
        _listener.SetMeasurementEventCallback<int>((instrument, value, _, _) => _values[instrument.Name] = value);
        _listener.Start();
    }

    public Task WriteAsync(HttpResponse response)
    {
        var json = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(json))
        {
            writer.WriteStartObject();
            writer.WriteNumber("pid", Environment.ProcessId);
            writer.WriteNumber("rssBytes", RssBytes());
            writer.WriteNumber("openFds", Directory.GetFileSystemEntries("/proc/self/fd").Length - 1); // less the listing's own
            lock (_gate)
            {
                _listener.RecordObservableInstruments();
                foreach ((string name, long value) in _values)
                {
                    writer.WriteNumber(name, value);
                }
            }
            writer.WriteEndObject();
        }
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json";
        response.ContentLength = json.WrittenCount;
        return response.Body.WriteAsync(json.WrittenMemory).AsTask();
    }

    /// <summary>VmRSS from /proc/self/status, in bytes.</summary>
    private static long RssBytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
            }
        }
        return 0;
    }
}
