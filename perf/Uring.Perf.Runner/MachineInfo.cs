using System.Runtime.InteropServices;
using Uring.Perf.Runner.Measure;
using Uring.Perf.Runner.Processes;
using Uring.Perf.Runner.Results;

namespace Uring.Perf.Runner;

/// <summary>The facts the report header lists: kernel, CPU, .NET, commit.</summary>
internal static class MachineInfo
{
    public static MachineFacts Collect(RunnerOptions options, string repoRoot)
    {
        var timeout = TimeSpan.FromSeconds(30);
        string Output(string file, params string[] args)
        {
            var r = ChildProcesses.Run(file, args, timeout, repoRoot);
            return r.Succeeded ? r.StdOut.Trim() : "";
        }

        string cpuModel = File.ReadLines("/proc/cpuinfo")
            .Where(l => l.StartsWith("model name", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf(':') + 1)..].Trim())
            .FirstOrDefault() ?? "unknown";

        // The short commit of a checkout, and whether its tracked files differ from it.
        string Commit(string dir)
        {
            string commit = Output("git", "-C", dir, "rev-parse", "--short", "HEAD");
            if (commit.Length == 0)
            {
                return "unknown (not a git checkout?)";
            }
            return Output("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Length > 0 ? commit + " with uncommitted changes" : commit;
        }

        return new MachineFacts
        {
            Kernel = Output("uname", "-r"),
            CpuModel = cpuModel,
            LogicalCpus = Environment.ProcessorCount,
            ServerCpus = options.ServerCpus,
            LoadCpus = options.LoadCpus,
            Rings = options.Rings,
            DotnetSdk = Output("dotnet", "--version"),
            DotnetRuntime = RuntimeInformation.FrameworkDescription,
            ClockTicksPerSecond = CpuTime.TicksPerSecond,
            Commit = Commit(repoRoot),
            BaselineCommit = options.BaselineBuild is string baseBuild ? Commit(baseBuild) : null,
        };
    }
}
