namespace Uring.Perf.Runner;

/// <summary>
/// Where a pass of the benchmark runs its processes. The method's pass pins each server to the
/// server CPUs (taskset) with <c>--rings</c>, and the load tool to the load CPUs with one thread
/// per load CPU. The <c>--defaults</c> pass pins nothing and passes no <c>--rings</c> (the
/// libraries' defaults: uring RingCount = CPU count, Sockets' own IOQueueCount), and the load
/// tool gets one thread per CPU of the machine.
/// </summary>
/// <param name="Unpinned">True for the defaults pass.</param>
/// <param name="ServerCpus">taskset list for the servers; null = not pinned.</param>
/// <param name="LoadCpus">taskset list for the load tool; null = not pinned.</param>
/// <param name="ServerCpuList">The CPUs the servers may run on (all of them when not pinned): their busy time is read around each run.</param>
/// <param name="LoadCpuList">The CPUs the load tool may run on.</param>
/// <param name="Rings">The app's --rings; null = not passed (the transport's default).</param>
/// <param name="LoadThreads">Load tool threads (wrk -t, h2load -t).</param>
internal sealed record Placement(
    bool Unpinned,
    string? ServerCpus,
    string? LoadCpus,
    IReadOnlyList<int> ServerCpuList,
    IReadOnlyList<int> LoadCpuList,
    int? Rings,
    int LoadThreads)
{
    /// <summary>Appended to a scenario's name in runs.json for the defaults pass ("close-64@defaults").</summary>
    public const string DefaultsSuffix = "@defaults";

    /// <summary>How the report marks the defaults pass's tables and rows.</summary>
    public const string DefaultsLabel = "defaults (unpinned)";

    public static Placement Pinned(RunnerOptions o) =>
        new(false, o.ServerCpus, o.LoadCpus, o.ServerCpuList, o.LoadCpuList, o.Rings, o.LoadCpuList.Count);

    public static Placement Defaults()
    {
        int[] all = [.. Enumerable.Range(0, Environment.ProcessorCount)];
        return new(true, null, null, all, all, null, all.Length);
    }

    /// <summary>The name of a scenario's record (and its runs) in this pass.</summary>
    public string RecordName(string scenario) => Unpinned ? scenario + DefaultsSuffix : scenario;

    public string RecordName(Scenario scenario) => RecordName(scenario.Name);

    /// <summary>"pinned: servers on CPU 0, load on CPU 1, rings 1" or the defaults' description, for the console.</summary>
    public string Describe() => Unpinned
        ? $"{DefaultsLabel}: nothing pinned, no --rings (library defaults), load tool with {LoadThreads} threads"
        : $"pinned: servers on CPU {ServerCpus}, load tool on CPU {LoadCpus}, rings {Rings}";

    /// <summary>The command that runs <paramref name="command"/> on the load CPUs (taskset), or as it is when not pinned.</summary>
    public IReadOnlyList<string> OnLoadCpus(IReadOnlyList<string> command) =>
        LoadCpus is null ? command : ["taskset", "-c", LoadCpus, .. command];
}
