using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Load;

/// <summary>Finds (and, as root on Debian, installs) the load generators and picks one per scenario.</summary>
internal sealed class LoadTools
{
    private readonly ILoadTool? _http1;
    private readonly Wrk? _wrk;
    private readonly H2Load? _h2load;
    private readonly HttpClientLoad? _httpClient;

    private LoadTools(ILoadTool? http1, Wrk? wrk, H2Load? h2load, HttpClientLoad? httpClient)
    {
        _http1 = http1;
        _wrk = wrk;
        _h2load = h2load;
        _httpClient = httpClient;
    }

    public static LoadTools Detect(RunnerOptions options, string repoRoot, Action<string> say)
    {
        bool needsH2 = options.Scenarios.Any(s => s.Kind is ScenarioKind.H2c or ScenarioKind.Grpc);
        Bombardier? bombardier = options.Tool == "wrk" ? null : Bombardier.Find();
        if (options.Tool == "bombardier" && bombardier is null)
        {
            say("--tool bombardier: no HTTP bombardier (codesenberg/bombardier) on PATH; using wrk");
        }
        bool needsWrk = bombardier is null || options.Scenarios.Any(s => s.NeedsWrk);

        string? wrkPath = needsWrk ? Apt.Ensure("wrk", "wrk", options.Install, say) : ChildProcesses.Which("wrk");
        Wrk? wrk = null;
        if (wrkPath is not null)
        {
            // "wrk -v" prints its version line and the usage, and exits 1.
            string version = ChildProcesses.Run(wrkPath, ["-v"], TimeSpan.FromSeconds(5)).StdOut.Split('\n')[0];
            int copyright = version.IndexOf(" Copyright", StringComparison.Ordinal);
            version = (copyright > 0 ? version[..copyright] : version).Trim();
            wrk = new Wrk(wrkPath, version.Length > 0 ? version : "wrk", Path.Combine(repoRoot, "perf", "wrk"));
        }

        H2Load? h2load = null;
        string? h2Path = needsH2 ? Apt.Ensure("h2load", "nghttp2-client", options.Install, say) : null;
        if (h2Path is not null)
        {
            string version = ChildProcesses.Run(h2Path, ["--version"], TimeSpan.FromSeconds(5)).StdOut.Trim();
            h2load = new H2Load(h2Path, version.Length > 0 ? version : "h2load");
        }

        HttpClientLoad? httpClient = options.Scenarios.Any(s => s.Kind == ScenarioKind.HttpClient) ? HttpClientLoad.Find(repoRoot) : null;

        ILoadTool? http1 = bombardier is not null ? bombardier : wrk;
        say($"==> load generator: {http1?.Version ?? "none (wrk is missing)"}" +
            (bombardier is null && options.Tool != "wrk" ? " (no HTTP bombardier on PATH)" : "") +
            (h2load is not null ? $"; HTTP/2: {h2load.Version}" : ""));
        return new LoadTools(http1, wrk, h2load, httpClient);
    }

    /// <summary>The tool for a scenario, or null with the reason.</summary>
    public ILoadTool? For(Scenario scenario, out string? whyNot)
    {
        ILoadTool? tool = scenario.Kind switch
        {
            _ when scenario.NeedsWrk => _wrk,
            // The idle scenario opens its connections itself; the tool only warms each fresh server up.
            ScenarioKind.Http1 or ScenarioKind.FixedRate or ScenarioKind.Idle or ScenarioKind.Proxy => _http1,
            ScenarioKind.H2c or ScenarioKind.Grpc => _h2load,
            ScenarioKind.HttpClient => _httpClient,
            _ => null,
        };
        whyNot = tool is not null ? null : scenario.Kind switch
        {
            ScenarioKind.H2c or ScenarioKind.Grpc => "h2load is not installed (Debian package nghttp2-client)",
            ScenarioKind.HttpClient => $"{HttpClientLoad.Dll} does not exist (the build of {HttpClientLoad.Project} failed?)",
            _ => "wrk is not installed (Debian package wrk)",
        };
        return tool;
    }

    public H2Load? H2Load => _h2load;
}

/// <summary>Installs a missing Debian package for a command, when allowed and possible (root, apt-get).</summary>
internal static class Apt
{
    /// <summary>The command's path, installing <paramref name="package"/> first if needed and allowed; null if it is still missing.</summary>
    public static string? Ensure(string command, string package, bool install, Action<string> say)
    {
        string? path = ChildProcesses.Which(command);
        if (path is not null || !install)
        {
            return path;
        }
        string? apt = ChildProcesses.Which("apt-get");
        if (apt is null || Environment.UserName != "root")
        {
            say($"{command} is missing and cannot be installed here (needs root and apt-get): install the Debian package {package}");
            return null;
        }
        say($"{command} is missing: apt-get install -y {package}");
        var timeout = TimeSpan.FromMinutes(5);
        var result = ChildProcesses.Run(apt, ["install", "-y", "-q", package], timeout);
        if (!result.Succeeded && !result.Cancelled)
        {
            // A fresh machine may have no package lists yet.
            ChildProcesses.Run(apt, ["update", "-q"], timeout);
            result = ChildProcesses.Run(apt, ["install", "-y", "-q", package], timeout);
        }
        path = ChildProcesses.Which(command);
        if (path is null)
        {
            say($"installing {package} failed: {result.Tail(3)}");
        }
        return path;
    }
}
