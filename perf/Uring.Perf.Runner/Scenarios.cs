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
}

/// <summary>One load shape. The runner measures every contender under it.</summary>
internal sealed record Scenario(string Name, ScenarioKind Kind, string Path, int Connections, int PipelineDepth = 1, int Streams = 1)
{
    /// <summary>The scenario whose baseline throughput sets the fixed rate.</summary>
    public const string RateReference = "plaintext-64";

    public static IReadOnlyList<Scenario> All { get; } =
    [
        new("plaintext-64", ScenarioKind.Http1, "/plaintext", Connections: 64),
        new("plaintext-256", ScenarioKind.Http1, "/plaintext", Connections: 256),
        new("plaintext-pipelined-16", ScenarioKind.Pipelined, "/plaintext", Connections: 256, PipelineDepth: 16),
        new("json-64", ScenarioKind.Http1, "/json", Connections: 64),
        new("h2-64", ScenarioKind.H2c, "/plaintext", Connections: 4, Streams: 16),
        // Connections for fixed-rate are chosen when the rate is known (see FixedRatePlan).
        new("fixed-rate", ScenarioKind.FixedRate, "/plaintext", Connections: 64),
        new("client-64", ScenarioKind.HttpClient, "/plaintext", Connections: 64),
    ];

    public static Scenario? Find(string name) =>
        All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Whether the load tool's latency percentiles mean anything here.</summary>
    public bool HasLatency => Kind != ScenarioKind.Pipelined;

    public string Describe() => Kind switch
    {
        ScenarioKind.Http1 => $"GET {Path}, {Connections} connections, one request in flight per connection",
        ScenarioKind.Pipelined => $"GET {Path}, {Connections} connections, {PipelineDepth} pipelined requests per write (latency not measured: wrk's percentiles are wrong when pipelining)",
        ScenarioKind.H2c => $"GET {Path} over HTTP/2 cleartext (prior knowledge), {Connections} connections x {Streams} streams",
        ScenarioKind.FixedRate => $"GET {Path} at a fixed offered rate (half the {Contender.Baseline} {RateReference} median unless --rate)",
        ScenarioKind.HttpClient => $"HttpClient GET {Path}, {Connections} concurrent callers, one request in flight each, against the {Contender.Baseline} server; " +
            "the rows are the client's handler (sockets = SocketsHttpHandler, uring = SocketsHttpHandler.UseUringTransport()), CPU µs/req is the client process's own",
        _ => Name,
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
