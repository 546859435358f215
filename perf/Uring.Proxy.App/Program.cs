// A reverse proxy on YARP for Uring.Transport's benchmarks and tests: every request goes to one
// backend. In the uring modes both sides run on the transport (Kestrel inbound, the forwarder's
// SocketsHttpHandler outbound through UringForwarderHttpClientFactory), sharing the I/O loops of
// this process; in sockets mode it is YARP's default on Kestrel's default.
//
// Usage: Uring.Proxy.App --backend URL [--transport sockets|uring|uring-epoll] [--inline] [--urls URLS] [--rings N]

using Uring.Perf;
using Uring.Transport;

namespace Uring.Proxy.App;

public static class Program
{
    private const string Usage =
        "usage: Uring.Proxy.App --backend URL [--transport " + TransportSwitch.Names + "] [--inline] [--urls URLS] [--rings N]\n" +
        "  --backend    where every request is forwarded, e.g. http://127.0.0.1:5000 (required).\n" +
        TransportSwitch.Help + "\n" +
        "               The proxy's outbound connections use the same transport and engine.\n" +
        "  --urls       semicolon-separated listen URLs. Default: http://127.0.0.1:5080";

    public static async Task<int> Main(string[] args)
    {
        if (!CommandLine.TryParse(args, Usage, ParseArgs, out ProxySettings? settings, out int exitCode))
            return exitCode;

        // Warnings show: YARP reports a request it could not forward as one.
        var app = ProxyServer.Build(settings, builder => TransportSwitch.QuietConsole(builder.Logging, LogLevel.Warning));
        Console.WriteLine($"backend {settings.Backend}");
        await TransportSwitch.RunAsync(app, settings.Engine, settings.Inline, settings.Urls);
        return 0;
    }

    /// <summary>Parses the command line; null means help was asked for. Throws ArgumentException on bad input.</summary>
    private static ProxySettings? ParseArgs(string[] args)
    {
        Uri? backend = null;
        var server = new ServerArgs("http://127.0.0.1:5080");
        var line = new CommandLine(args);
        while (line.MoveNext())
        {
            switch (line.Name)
            {
                case "-h" or "--help":
                    return null;
                case "--backend":
                    string text = line.Value();
                    if (!Uri.TryCreate(text, UriKind.Absolute, out backend) || backend.Scheme is not ("http" or "https"))
                        throw new ArgumentException($"--backend needs an absolute http:// or https:// URL, got '{text}'");
                    break;
                default:
                    if (!server.TryTake(line)) throw line.Unknown();
                    break;
            }
        }
        if (backend is null)
            throw new ArgumentException("--backend is required (the URL every request is forwarded to)");
        return new ProxySettings(backend, server.Engine, server.Urls, server.Rings, server.Inline);
    }
}
