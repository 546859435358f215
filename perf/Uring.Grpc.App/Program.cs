// A gRPC service for Uring.Transport's benchmarks and tests (Protos/bench.proto): unary, server
// streaming, client streaming and bidirectional streaming, on h2c and/or TLS endpoints, on the
// uring transport or Kestrel's Sockets transport.
//
// Usage: Uring.Grpc.App [--transport sockets|uring|uring-epoll] [--inline] [--urls URLS] [--rings N]

using Uring.Perf;
using Uring.Transport;

namespace Uring.Grpc.App;

public static class Program
{
    private const string Usage =
        "usage: Uring.Grpc.App [--transport " + TransportSwitch.Names + "] [--inline] [--urls URLS] [--rings N]\n" +
        TransportSwitch.Help + "\n" +
        "  --urls       semicolon-separated listen URLs, all HTTP/2 only: http:// = h2c (prior knowledge),\n" +
        "               https:// = TLS on a self-signed certificate made at start-up.\n" +
        "               Default: http://127.0.0.1:5090;https://127.0.0.1:5091";

    public static async Task<int> Main(string[] args)
    {
        if (!CommandLine.TryParse(args, Usage, ParseArgs, out GrpcSettings? settings, out int exitCode))
            return exitCode;

        // Warnings show: gRPC logs a failed call's exception as one, Kestrel a broken connection.
        var app = GrpcServer.Build(settings, builder => TransportSwitch.QuietConsole(builder.Logging, LogLevel.Warning));
        await TransportSwitch.RunAsync(app, settings.Engine, settings.Inline, settings.Urls);
        return 0;
    }

    /// <summary>Parses the command line; null means help was asked for. Throws ArgumentException on bad input.</summary>
    private static GrpcSettings? ParseArgs(string[] args)
    {
        var server = new ServerArgs("http://127.0.0.1:5090;https://127.0.0.1:5091");
        var line = new CommandLine(args);
        while (line.MoveNext())
        {
            if (line.Name is "-h" or "--help") return null;
            if (!server.TryTake(line)) throw line.Unknown();
        }
        foreach (string url in server.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https"))
                throw new ArgumentException($"--urls: '{url}' is not an http:// or https:// URL");
        }
        return new GrpcSettings(server.Engine, server.Urls, server.Rings, server.Inline);
    }
}
