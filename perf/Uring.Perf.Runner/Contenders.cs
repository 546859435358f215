namespace Uring.Perf.Runner;

/// <summary>One server configuration under test: how to start the app for it.</summary>
/// <param name="Name">The name on the command line and in the report.</param>
/// <param name="Transport">The app's <c>--transport</c> value.</param>
/// <param name="Inline">Whether the app runs with <c>--inline</c>.</param>
/// <param name="ExpectedEngine">The ring engine the app's log must name (null for sockets).</param>
internal sealed record Contender(string Name, string Transport, bool Inline, string? ExpectedEngine)
{
    public const string Baseline = "sockets";

    /// <summary>Ends the name of a contender run from the baseline build (--baseline-build): "uring@base".</summary>
    public const string BaseSuffix = "@base";

    public static IReadOnlyList<Contender> All { get; } =
    [
        new("sockets", "sockets", Inline: false, ExpectedEngine: null),
        new("uring", "uring", Inline: false, ExpectedEngine: "IoUring"),
        new("uring-epoll", "uring-epoll", Inline: false, ExpectedEngine: "Epoll"),
        new("sockets-inline", "sockets", Inline: true, ExpectedEngine: null),
        new("uring-inline", "uring", Inline: true, ExpectedEngine: "IoUring"),
    ];

    /// <summary>The checkout whose built apps this contender runs (--baseline-build); null: this one.</summary>
    public string? BaseBuild { get; init; }

    /// <summary>The default set; <c>--inline</c> adds the inline variants.</summary>
    public static IReadOnlyList<Contender> Defaults(bool withInline) =>
        [.. All.Where(c => withInline || !c.Inline)];

    /// <summary>
    /// A contender by name; "NAME@base" is NAME run from <paramref name="baseBuild"/>. Null for an
    /// unknown name; throws ArgumentException for "@base" without a baseline build.
    /// </summary>
    public static Contender? Find(string name, string? baseBuild)
    {
        bool onBase = name.EndsWith(BaseSuffix, StringComparison.OrdinalIgnoreCase);
        var found = All.FirstOrDefault(c => string.Equals(c.Name, onBase ? name[..^BaseSuffix.Length] : name, StringComparison.OrdinalIgnoreCase));
        if (!onBase || found is null)
        {
            return found;
        }
        return baseBuild is null
            ? throw new ArgumentException($"contender '{name}' runs the baseline build: give --baseline-build DIR")
            : found.OnBaseBuild(baseBuild);
    }

    /// <summary>This contender's twin started from the baseline build in <paramref name="dir"/>.</summary>
    public Contender OnBaseBuild(string dir) => this with { Name = Name + BaseSuffix, BaseBuild = dir };

    /// <summary>The row a baseline-build contender is compared with ("uring" for "uring@base"); null for a contender of this build.</summary>
    public static string? CounterpartOf(string name) =>
        name.EndsWith(BaseSuffix, StringComparison.Ordinal) ? name[..^BaseSuffix.Length] : null;

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
