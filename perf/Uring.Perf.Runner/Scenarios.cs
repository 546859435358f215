namespace Uring.Perf.Runner;

internal enum ScenarioKind
{
    /// <summary>Closed-loop HTTP/1.1, one request in flight per connection.</summary>
    Http1,

    /// <summary>HTTP/1.1 with <see cref="Scenario.PipelineDepth"/> requests per write.</summary>
    Pipelined,

    /// <summary>HTTP/2 over cleartext (prior knowledge), <see cref="Scenario.Connections"/> x <see cref="Scenario.Streams"/>.</summary>
    H2c,

    /// <summary>HTTP/1.1 paced at a fixed rate (half the baseline's plaintext-64 throughput unless --rate).</summary>
    FixedRate,

    /// <summary>
    /// The client side: an HttpClient load loop (Uring.Perf.Client) with each <see cref="ClientHandler"/>
    /// against the baseline server; the contenders are the client's handlers.
    /// </summary>
    HttpClient,

    /// <summary>
    /// The YARP proxy (perf/Uring.Proxy.App) in front of the sample app on Sockets, HTTP/1.1 closed
    /// loop; the contenders are the proxy's transport (both of its sides), its CPU is the figure.
    /// </summary>
    Proxy,

    /// <summary>
    /// The gRPC app (perf/Uring.Grpc.App): h2load posting one fixed unary call over h2c,
    /// <see cref="Scenario.Connections"/> x <see cref="Scenario.Streams"/>.
    /// </summary>
    Grpc,

    /// <summary>
    /// Idle keep-alive memory: <see cref="Scenario.Connections"/> HTTP/1.1 connections, each sends
    /// one request, reads its response and stays open; the server's RSS growth per connection.
    /// </summary>
    Idle,
}

/// <summary>One load shape. The runner measures every contender under it.</summary>
internal sealed record Scenario(string Name, ScenarioKind Kind, string Path, int Connections, int PipelineDepth = 1, int Streams = 1)
{
    /// <summary>The scenario whose baseline throughput sets the fixed rate.</summary>
    public const string RateReference = "plaintext-64";

    /// <summary>The idle scenario's name; its connection count is --idle-connections.</summary>
    public const string IdleName = "idle-10k";

    public const int IdleDefaultConnections = 10_000;

    private const long MiB = 1 << 20;

    public static IReadOnlyList<Scenario> All { get; } =
    [
        new("plaintext-64", ScenarioKind.Http1, "/plaintext", Connections: 64),
        new("plaintext-256", ScenarioKind.Http1, "/plaintext", Connections: 256),
        new("plaintext-pipelined-16", ScenarioKind.Pipelined, "/plaintext", Connections: 256, PipelineDepth: 16),
        new("json-64", ScenarioKind.Http1, "/json", Connections: 64),
        new("close-64", ScenarioKind.Http1, "/plaintext", Connections: 64) { Header = "Connection: close" },
        new("download-1m-16", ScenarioKind.Http1, "/bytes?size=1048576", Connections: 16) { PayloadBytes = MiB, PayloadDirection = "response" },
        new("upload-1m-16", ScenarioKind.Http1, "/upload", Connections: 16)
        {
            Script = "upload.lua",
            ScriptEnvironment = new Dictionary<string, string> { ["UPLOAD_BYTES"] = MiB.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            PayloadBytes = MiB,
            PayloadDirection = "request",
        },
        new("tls-64", ScenarioKind.Http1, "/plaintext", Connections: 64) { Tls = true },
        new("tls-close-64", ScenarioKind.Http1, "/plaintext", Connections: 64) { Header = "Connection: close", Tls = true },
        new("h2-64", ScenarioKind.H2c, "/plaintext", Connections: 4, Streams: 16),
        // Connections for fixed-rate are chosen when the rate is known (see FixedRatePlan).
        new("fixed-rate", ScenarioKind.FixedRate, "/plaintext", Connections: 64),
        new("client-64", ScenarioKind.HttpClient, "/plaintext", Connections: 64),
        new("proxy-64", ScenarioKind.Proxy, "/plaintext", Connections: 64),
        new("grpc-unary-64", ScenarioKind.Grpc, GrpcUnary.Path, Connections: 4, Streams: 16),
        new(IdleName, ScenarioKind.Idle, "/plaintext", Connections: IdleDefaultConnections),
    ];

    public static Scenario? Find(string name) =>
        All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>An extra request header for the load tool (wrk -H), e.g. "Connection: close".</summary>
    public string? Header { get; init; }

    /// <summary>A wrk script in perf/wrk/ that makes the request (e.g. upload.lua).</summary>
    public string? Script { get; init; }

    /// <summary>Environment variables the script reads.</summary>
    public IReadOnlyDictionary<string, string>? ScriptEnvironment { get; init; }

    /// <summary>Body bytes each request moves (the response's or the request's, see <see cref="PayloadDirection"/>), for the throughput line.</summary>
    public long? PayloadBytes { get; init; }

    /// <summary>"response" (download) or "request" (upload).</summary>
    public string? PayloadDirection { get; init; }

    /// <summary>HTTP/1.1 over TLS, to the server's https endpoint (the app's --tls).</summary>
    public bool Tls { get; init; }

    /// <summary>Whether only wrk can make this load: pipelining, an extra header, a script, TLS (wrk does not check the self-signed certificate).</summary>
    public bool NeedsWrk => Kind == ScenarioKind.Pipelined || Header is not null || Script is not null || Tls;

    /// <summary>Whether the scenario measures a server of its own (the proxy, the gRPC app), started for it, instead of the sample app's contenders.</summary>
    public bool OwnServers => Kind is ScenarioKind.Proxy or ScenarioKind.Grpc;

    /// <summary>Whether the load tool's latency percentiles mean anything here.</summary>
    public bool HasLatency => Kind is not (ScenarioKind.Pipelined or ScenarioKind.Idle);

    public string Describe() => Kind switch
    {
        ScenarioKind.Http1 when Tls && Header == "Connection: close" =>
            $"GET {Path} over TLS with `{Header}`, {Connections} connections: a new TCP connection and TLS handshake for every request. " +
            "wrk offers each new connection the session of the one before it, and Kestrel (SslStream) issues TLS 1.3 session tickets, so after each " +
            "connection's first, full handshake they are resumed ones (PSK with an ECDHE key exchange; the certificate is neither sent nor signed with); " +
            "the server's CPU per request includes accepting, that handshake and closing. " + TlsSetup,
        ScenarioKind.Http1 when Tls =>
            $"GET {Path} over TLS, {Connections} keep-alive connections, one request in flight per connection; each connection's one handshake is in the warm-up. " + TlsSetup,
        ScenarioKind.Http1 when Header == "Connection: close" =>
            $"GET {Path} with `{Header}`, {Connections} connections: a new TCP connection for every request (connect, accept, one request, close); " +
            "the server's CPU per request includes accepting and closing the connection",
        ScenarioKind.Http1 when Script is not null =>
            $"POST {Path} with a {Size(PayloadBytes)} body (wrk script perf/wrk/{Script}" +
            (ScriptEnvironment is { Count: > 0 } env ? ", " + string.Join(", ", env.Select(kv => $"{kv.Key}={kv.Value}")) : "") +
            $"), {Connections} connections, one request in flight per connection; the app reads the body and answers with its length",
        ScenarioKind.Http1 when PayloadBytes is long bytes =>
            $"GET {Path}: a {Size(bytes)} response (a fixed pattern, 64 KiB per write), {Connections} connections, one request in flight per connection",
        ScenarioKind.Http1 => $"GET {Path}, {Connections} connections, one request in flight per connection",
        ScenarioKind.Pipelined => $"GET {Path}, {Connections} connections, {PipelineDepth} pipelined requests per write (latency not measured: wrk's percentiles are wrong when pipelining)",
        ScenarioKind.H2c => $"GET {Path} over HTTP/2 cleartext (prior knowledge), {Connections} connections x {Streams} streams",
        ScenarioKind.FixedRate => $"GET {Path} at a fixed offered rate (half the {Contender.Baseline} {RateReference} median unless --rate)",
        ScenarioKind.Proxy =>
            $"GET {Path} through the YARP proxy (perf/Uring.Proxy.App, one route) to the sample app on Kestrel's Sockets transport, {Connections} connections, one request in flight per connection; " +
            "the rows are the proxy's transport, inbound and outbound (sockets = Kestrel's default and YARP's default SocketsHttpHandler; uring = UseUringTransport() and the forwarder's handler on the transport, sharing the proxy's loops); " +
            "the backend (one process for every row) runs with the load tool on the load CPUs; CPU µs/req is the proxy process's own",
        ScenarioKind.Grpc =>
            $"gRPC unary calls (POST {Path}, perf/Uring.Grpc.App) over HTTP/2 cleartext, {Connections} connections x {Streams} streams ({Connections * Streams} calls in flight), " +
            $"h2load posting one fixed call (a {GrpcUnary.PayloadBytes}-byte payload, echoed); grpc-status 0 checked once before each server's load with a real call; CPU µs/req is the server's per call",
        ScenarioKind.HttpClient => $"HttpClient GET {Path}, {Connections} concurrent callers, one request in flight each, against the {Contender.Baseline} server; " +
            "the rows are the client's handler (sockets = SocketsHttpHandler, uring = SocketsHttpHandler.UseUringTransport()), CPU µs/req is the client process's own",
        ScenarioKind.Idle =>
            $"Idle keep-alive memory: {Connections.ToString("#,0", System.Globalization.CultureInfo.InvariantCulture)} HTTP/1.1 connections to a fresh server per contender and run; " +
            $"each sends GET {Path} once, reads the response and stays open, idle. The figure is the growth of the server's RSS (VmRSS in /proc/PID/status) " +
            "from before opening them (after a short warm-up load and once the RSS has settled: two reads 1 s apart within 1 %) to once all are open and answered and the RSS has settled again, " +
            "per connection",
        _ => Name,
    };

    /// <summary>How the TLS scenarios' servers and wrk meet.</summary>
    private const string TlsSetup =
        "Kestrel terminates TLS on the app's https endpoint (--tls): a self-signed ECDSA P-256 certificate made at its start-up, HTTP/1.1 only (ALPN http/1.1); " +
        "wrk (OpenSSL, no certificate check, no ALPN) negotiates TLS 1.3";

    private static string Size(long? bytes) => bytes switch
    {
        null => "?",
        long b when b % MiB == 0 => $"{b / MiB} MiB",
        long b when b % 1024 == 0 => $"{b / 1024} KiB",
        long b => $"{b} B",
    };
}

/// <summary>An HttpClient configuration of the client scenario: Uring.Perf.Client's <c>--handler</c>.</summary>
/// <param name="Name">The row's name (the same names as the server contenders, so ratios are "vs sockets").</param>
/// <param name="Description">What the handler is, for the report.</param>
internal sealed record ClientHandler(string Name, string Description)
{
    public static IReadOnlyList<ClientHandler> All { get; } =
    [
        new("sockets", "SocketsHttpHandler (the .NET sockets engine)"),
        new("uring", "SocketsHttpHandler.UseUringTransport() (engine Auto)"),
    ];
}
