using System.Text.Json;
using System.Text.Json.Serialization;

namespace Uring.Perf.Runner.Results;

/// <summary>Everything one benchmark invocation measured: runs.json.</summary>
internal sealed class RunsFile
{
    /// <summary>
    /// 2 added the defaults pass (<see cref="ScenarioRecord.Unpinned"/>, ...) and the idle scenario's
    /// fields; 3 the idle scenario's after-a-full-GC fields (<see cref="RunRecord.RssKiBPerConnectionAfterGc"/>, ...);
    /// 4 the baseline build (<see cref="RunSettings.BaselineBuild"/>, <see cref="ContenderRecord.Build"/>, ...) and <see cref="ContenderRecord.TlsPort"/>.
    /// Every field added since 1 is optional, so older files still render (--render).
    /// </summary>
    public int FormatVersion { get; set; } = 4;
    public bool Quick { get; set; }

    /// <summary>True when the run was stopped early (Ctrl-C, a signal): the numbers are partial.</summary>
    public bool Interrupted { get; set; }

    public DateTime StartedUtc { get; set; }
    public DateTime? FinishedUtc { get; set; }
    public MachineFacts Machine { get; set; } = new();
    public RunSettings Settings { get; set; } = new();
    public List<ContenderRecord> Contenders { get; set; } = [];
    public List<ScenarioRecord> Scenarios { get; set; } = [];
    public List<RunRecord> Runs { get; set; } = [];

    /// <summary>Things the reader must know (tool fallbacks, syscall counting unavailable, ...), once each.</summary>
    public List<string> Notes { get; set; } = [];

    public string ToJson() => JsonSerializer.Serialize(this, s_json.RunsFile);

    public static RunsFile FromJson(string json) =>
        JsonSerializer.Deserialize(json, s_json.RunsFile) ?? throw new JsonException("runs.json is empty");

    // Relaxed escaping keeps '+', '<' and '`' readable in a file that is only ever read as data.
    private static readonly RunsJsonContext s_json = new(new JsonSerializerOptions
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}

internal sealed class MachineFacts
{
    public string Kernel { get; set; } = "";
    public string CpuModel { get; set; } = "";
    public int LogicalCpus { get; set; }
    public string ServerCpus { get; set; } = "";
    public string LoadCpus { get; set; } = "";
    public int Rings { get; set; }
    public string DotnetSdk { get; set; } = "";
    public string DotnetRuntime { get; set; } = "";
    public long ClockTicksPerSecond { get; set; }
    public string Commit { get; set; } = "";

    /// <summary>The baseline build's commit (--baseline-build), as <see cref="Commit"/>; null without one.</summary>
    public string? BaselineCommit { get; set; }

    /// <summary>"wrk debian/4.1.0-3+b2 [epoll] ..." etc., one per tool used.</summary>
    public List<string> LoadTools { get; set; } = [];

    /// <summary>perf's version line, or why syscalls were not counted.</summary>
    public string SyscallCounting { get; set; } = "";
}

internal sealed class RunSettings
{
    public int Runs { get; set; }
    public int DurationSeconds { get; set; }
    public int WarmupSeconds { get; set; }
    public int ScenarioWarmupSeconds { get; set; }
    public double PauseSeconds { get; set; }
    public string Tool { get; set; } = "";
    public bool CountSyscalls { get; set; }
    public bool H2cEndpoint { get; set; }
    public List<string> CommandLine { get; set; } = [];

    /// <summary>The passes run: "pinned" (the method), "defaults" (--defaults: nothing pinned, library defaults). Null in older files: pinned only.</summary>
    public List<string>? Passes { get; set; }

    /// <summary>The defaults pass: load tool threads (one per CPU of the machine).</summary>
    public int? DefaultsLoadThreads { get; set; }

    /// <summary>The idle scenario's connection count (--idle-connections).</summary>
    public int? IdleConnections { get; set; }

    /// <summary>--baseline-build: the checkout the @base contenders ran from; null without one.</summary>
    public string? BaselineBuild { get; set; }
}

internal sealed class ContenderRecord
{
    public string Name { get; set; } = "";

    /// <summary>The app of an app scenario's server (Uring.Proxy.App, Uring.Grpc.App); null: the sample app.</summary>
    public string? App { get; set; }
    public List<string> AppArgs { get; set; } = [];

    /// <summary>A @base contender: the checkout whose build it ran; null: this one.</summary>
    public string? Build { get; set; }

    /// <summary>Options the runner did not pass because the app's build does not list them (with their values); null: none.</summary>
    public List<string>? LeftOutArgs { get; set; }
    public int Port { get; set; }
    public int? H2Port { get; set; }

    /// <summary>The https endpoint's port (the TLS scenarios); null: none.</summary>
    public int? TlsPort { get; set; }
    public int? Pid { get; set; }

    /// <summary>"IoUring" / "Epoll" as the transport logged it; null for sockets.</summary>
    public string? Engine { get; set; }
    public string? EngineLine { get; set; }
    public bool Started { get; set; }

    /// <summary>Why it did not start, or why it stopped during the benchmark.</summary>
    public string? Error { get; set; }
    public string LogFile { get; set; } = "";

    /// <summary>A server of the defaults pass: not pinned, no --rings.</summary>
    public bool Unpinned { get; set; }

    /// <summary>The soft open-file limit the server ran with (/proc/PID/limits).</summary>
    public long? MaxOpenFiles { get; set; }
}

internal sealed class ScenarioRecord
{
    public string Name { get; set; } = "";
    public string Description { get; set; } = "";
    public string? Tool { get; set; }
    public bool Supported { get; set; }

    /// <summary>The defaults pass (nothing pinned, library defaults); its name ends in "@defaults".</summary>
    public bool Unpinned { get; set; }

    /// <summary>The idle keep-alive memory scenario: its rows are RSS figures, not requests/s.</summary>
    public bool Idle { get; set; }

    /// <summary>Body bytes per request (download: the response's, upload: the request's), for the throughput line.</summary>
    public long? PayloadBytes { get; set; }

    /// <summary>Why it was not run, or what is special about it.</summary>
    public string? Note { get; set; }
    public int Connections { get; set; }
    public int PipelineDepth { get; set; }
    public int Streams { get; set; }

    /// <summary>The client scenario: the rows are HttpClient handlers against one server, and CPU is the client's.</summary>
    public bool ClientSide { get; set; }

    /// <summary>fixed-rate: the offered rate aimed at, and how it was set.</summary>
    public double? TargetRps { get; set; }
    public double? DelayMs { get; set; }
    public string? RateSource { get; set; }
}

/// <summary>One measured run of one contender in one scenario.</summary>
internal sealed class RunRecord
{
    public string Scenario { get; set; } = "";
    public string Contender { get; set; } = "";

    /// <summary>1-based.</summary>
    public int Run { get; set; }
    public string Tool { get; set; } = "";
    public DateTime StartedUtc { get; set; }
    public List<string> Command { get; set; } = [];

    public long Requests { get; set; }
    public double Rps { get; set; }
    public double? P50Us { get; set; }
    public double? P99Us { get; set; }
    public long Non2xx { get; set; }
    public long SocketErrors { get; set; }
    public string? ErrorDetail { get; set; }

    /// <summary>Set when the run measured nothing usable; such runs are left out of the medians.</summary>
    public string? Failure { get; set; }

    public double WallSeconds { get; set; }
    public double ToolSeconds { get; set; }

    /// <summary>delta(utime + stime) of the server process over the run, in clock ticks.</summary>
    public long? ServerCpuTicks { get; set; }
    public double? CpuUsPerRequest { get; set; }

    /// <summary>The client scenario: the client process's own CPU over its measured window, per request.</summary>
    public double? ClientCpuUsPerRequest { get; set; }

    /// <summary>The server process's CPU use over the run, in % of one CPU.</summary>
    public double? ServerProcessCpuPercent { get; set; }
    public long? Syscalls { get; set; }
    public double? SyscallsPerRequest { get; set; }

    /// <summary>How busy the server CPUs were over the run (all processes, softirq included).</summary>
    public double? ServerCoresBusyPercent { get; set; }

    /// <summary>How busy the server CPUs were in the idle pause just before the run, by anything but the contenders' servers: other load on the machine.</summary>
    public double? OtherLoadBeforePercent { get; set; }

    /// <summary>CPU the contenders' servers used in that idle pause (in % of the server CPUs), e.g. the previous contender still winding down.</summary>
    public double? ServersCpuBeforePercent { get; set; }

    /// <summary>How busy the load generator's CPUs were, by anything (the load tool, softirq, other processes).</summary>
    public double? LoadCoresBusyPercent { get; set; }

    /// <summary>The load tool's own CPU time (with perf) over the run, in % of its CPUs: near 100 % means the load tool was the limit.</summary>
    public double? LoadToolCpuPercent { get; set; }

    /// <summary>fixed-rate: the rate aimed at.</summary>
    public double? TargetRps { get; set; }

    // ---- the idle scenario (null elsewhere). Requests = connections opened and answered;
    // SocketErrors = connections that failed to open or were not answered.

    /// <summary>Connections asked for.</summary>
    public int? IdleConnections { get; set; }

    /// <summary>The server's VmRSS, settled, after its warm-up and before opening the connections.</summary>
    public long? RssBeforeKiB { get; set; }

    /// <summary>The server's VmRSS, settled, with every connection open and answered.</summary>
    public long? RssAfterKiB { get; set; }

    /// <summary>(RssAfterKiB - RssBeforeKiB) / connections opened.</summary>
    public double? RssKiBPerConnection { get; set; }

    // The GC-normalized figures (format 3; null in older files): after each settled read above,
    // one POST /gc (the app's --gc-endpoint: full blocking, compacting, aggressive GCs), then the
    // RSS read again once settled. Null also when the GC request failed (see GcError).

    /// <summary>The server's VmRSS before opening the connections, settled again after a full GC (which followed <see cref="RssBeforeKiB"/>).</summary>
    public long? RssBeforeGcKiB { get; set; }

    /// <summary>The server's VmRSS with every connection open, settled again after a full GC (which followed <see cref="RssAfterKiB"/>).</summary>
    public long? RssAfterGcKiB { get; set; }

    /// <summary>The managed heap size (GC.GetTotalMemory after the GCs) the server answered, before opening the connections and with them open.</summary>
    public long? HeapBeforeBytes { get; set; }
    public long? HeapAfterBytes { get; set; }

    /// <summary>(RssAfterGcKiB - RssBeforeGcKiB) / connections opened.</summary>
    public double? RssKiBPerConnectionAfterGc { get; set; }

    /// <summary>(HeapAfterBytes - HeapBeforeBytes) / 1024 / connections opened: the managed heap's growth per connection.</summary>
    public double? HeapKiBPerConnection { get; set; }

    /// <summary>Whether the RSS settled after both GCs (else the last read counts).</summary>
    public bool? GcSettled { get; set; }

    /// <summary>Why an after-GC figure is missing (the GC request failed, the server exited), else null.</summary>
    public string? GcError { get; set; }

    /// <summary>The server's open fds (/proc/PID/fd) before and with the connections open.</summary>
    public int? FdsBefore { get; set; }
    public int? FdsAfter { get; set; }

    /// <summary>Seconds to open (and get the answer on) every connection.</summary>
    public double? OpenSeconds { get; set; }

    /// <summary>Seconds the RSS took to settle after the last connection was answered, and whether it did (else the last read counts).</summary>
    public double? SettleSeconds { get; set; }
    public bool? Settled { get; set; }

    /// <summary>Seconds until the server's fd count was back near its count before, after the client closed every connection; null if it was not within the bound.</summary>
    public double? CloseSeconds { get; set; }

    [JsonIgnore]
    public bool HasErrors => Non2xx > 0 || SocketErrors > 0;
}

[JsonSerializable(typeof(RunsFile))]
internal sealed partial class RunsJsonContext : JsonSerializerContext
{
}
