using System.Globalization;
using System.Text.RegularExpressions;

namespace Uring.Perf.Runner.Processes;

/// <summary>How one server is started: which app build, on which CPUs, its endpoints and its arguments.</summary>
/// <param name="Contender">The configuration under test.</param>
/// <param name="Dotnet">The dotnet host.</param>
/// <param name="AppDll">The app's dll: this checkout's, or the baseline build's for a @base contender.</param>
/// <param name="ServerCpus">taskset list; null: not pinned.</param>
/// <param name="Rings">The app's --rings; null: not passed.</param>
/// <param name="Port">The HTTP/1.1 port, --urls.</param>
internal sealed record ServerLaunch(Contender Contender, string Dotnet, string AppDll, string? ServerCpus, int? Rings, int Port)
{
    /// <summary>The app's flag that makes it serve POST /gc (a full, aggressive GC; answers the managed heap size).</summary>
    public const string GcEndpointArg = "--gc-endpoint";

    /// <summary>The app's flag that makes it serve the https:// URLs of --urls (self-signed certificate, HTTP/1.1).</summary>
    public const string TlsArg = "--tls";

    /// <summary>The HTTP/2-only cleartext port (--h2c-endpoint), or null.</summary>
    public int? H2Port { get; init; }

    /// <summary>The HTTP/1.1-over-TLS port (<see cref="TlsArg"/>; the TLS scenarios), or null.</summary>
    public int? TlsPort { get; init; }

    /// <summary>The app also serves POST /gc (<see cref="GcEndpointArg"/>; the idle scenario's servers).</summary>
    public bool GcEndpoint { get; init; }

    /// <summary>The app's own arguments after the contender's (the proxy's --backend).</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>The options the app's build lists in its --help (<see cref="AppOptions.Of"/>); null: every argument is passed.</summary>
    public IReadOnlySet<string>? KnownOptions { get; init; }

    /// <summary>The cleartext HTTP/1.1 endpoint.</summary>
    public string HttpUrl => Url("http", Port);

    /// <summary>The https endpoint, or null.</summary>
    public string? TlsUrl => TlsPort is int p ? Url("https", p) : null;

    /// <summary>--urls: the HTTP/1.1 endpoint and the https one, if any.</summary>
    public string Urls => TlsUrl is string tls ? $"{HttpUrl};{tls}" : HttpUrl;

    public static string Url(string scheme, int port) => $"{scheme}://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>What the runner means to pass, before <see cref="KnownOptions"/> leaves any out.</summary>
    private List<string> Wanted =>
        [.. Contender.AppArgs(Urls, Rings), .. TlsPort is null ? [] : new[] { TlsArg }, .. GcEndpoint ? new[] { GcEndpointArg } : [], .. ExtraArgs];

    /// <summary>Whether the app's build has <paramref name="option"/> (every one, when its options are not known).</summary>
    public bool Knows(string option) => KnownOptions is null || KnownOptions.Contains(option);

    /// <summary>The app's arguments: <see cref="Wanted"/> less the options its build does not have.</summary>
    public IReadOnlyList<string> AppArgs => AppOptions.Keep(Wanted, KnownOptions, out _);

    /// <summary>The options left out because the app's build does not list them (with their values).</summary>
    public IReadOnlyList<string> LeftOut
    {
        get
        {
            AppOptions.Keep(Wanted, KnownOptions, out var leftOut);
            return leftOut;
        }
    }

    /// <summary>The command line: sh raising the fd limit, taskset when pinned, dotnet, the app and its arguments.</summary>
    public IReadOnlyList<string> Command =>
        [.. FileLimit.ShellPrefix, .. ServerCpus is null ? [] : new[] { "taskset", "-c", ServerCpus }, Dotnet, AppDll, .. AppArgs];
}

/// <summary>
/// The options an app's build lists in its usage (<c>dotnet APP.dll --help</c>). A baseline build
/// (--baseline-build) may predate options the runner now passes; it is started without them.
/// </summary>
internal static partial class AppOptions
{
    private static readonly Dictionary<string, IReadOnlySet<string>?> s_byDll = new(StringComparer.Ordinal);

    /// <summary>The "--name" options <paramref name="dll"/> lists in its --help, read once per dll; null when it printed none (then everything is passed).</summary>
    public static IReadOnlySet<string>? Of(string dotnet, string dll)
    {
        if (!s_byDll.TryGetValue(dll, out var known))
        {
            var help = ChildProcesses.Run(dotnet, [dll, "--help"], TimeSpan.FromSeconds(60));
            var names = OptionRegex().Matches(help.StdOut).Select(m => m.Value).ToHashSet(StringComparer.Ordinal);
            known = names.Count > 0 ? names : null;
            s_byDll[dll] = known;
        }
        return known;
    }

    /// <summary>
    /// <paramref name="args"/> without the options not in <paramref name="known"/> (null: all are
    /// kept); an option's value (the next argument, when it does not start with "--") goes with it.
    /// </summary>
    public static List<string> Keep(IReadOnlyList<string> args, IReadOnlySet<string>? known, out List<string> leftOut)
    {
        var kept = new List<string>();
        leftOut = [];
        for (int i = 0; i < args.Count; i++)
        {
            bool hasValue = i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
            var into = known is null || known.Contains(args[i]) ? kept : leftOut;
            into.Add(args[i]);
            if (hasValue)
            {
                into.Add(args[++i]);
            }
        }
        return kept;
    }

    [GeneratedRegex(@"(?<![\w-])--[a-z][a-z0-9-]*")]
    private static partial Regex OptionRegex();
}
