namespace Uring.Perf.Runner;

/// <summary>One server configuration under test: how to start the app for it.</summary>
/// <param name="Name">The name on the command line and in the report.</param>
/// <param name="Transport">The app's <c>--transport</c> value.</param>
/// <param name="Inline">Whether the app runs with <c>--inline</c>.</param>
/// <param name="ExpectedEngine">The ring engine the app's log must name (null for sockets).</param>
internal sealed record Contender(string Name, string Transport, bool Inline, string? ExpectedEngine)
{
    public const string Baseline = "sockets";

    public static IReadOnlyList<Contender> All { get; } =
    [
        new("sockets", "sockets", Inline: false, ExpectedEngine: null),
        new("uring", "uring", Inline: false, ExpectedEngine: "IoUring"),
        new("uring-epoll", "uring-epoll", Inline: false, ExpectedEngine: "Epoll"),
        new("sockets-inline", "sockets", Inline: true, ExpectedEngine: null),
        new("uring-inline", "uring", Inline: true, ExpectedEngine: "IoUring"),
    ];

    /// <summary>The default set; <c>--inline</c> adds the inline variants.</summary>
    public static IReadOnlyList<Contender> Defaults(bool withInline) =>
        [.. All.Where(c => withInline || !c.Inline)];

    public static Contender? Find(string name) =>
        All.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The app's arguments for this contender; <paramref name="rings"/> null: no --rings (the transport's default).</summary>
    public IReadOnlyList<string> AppArgs(string urls, int? rings)
    {
        var args = new List<string> { "--transport", Transport, "--urls", urls };
        if (rings is int n)
        {
            args.Add("--rings");
            args.Add(n.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (Inline)
        {
            args.Add("--inline");
        }
        return args;
    }
}
