namespace Uring.Transport.Tests.Infrastructure;

/// <summary>This process's open file descriptors, read from /proc/self/fd.</summary>
internal static class OpenFiles
{
    /// <summary>
    /// Each open fd that is not a file, with what it refers to: "socket:[123]", "pipe:[45]",
    /// "anon_inode:[io_uring]", "anon_inode:[eventfd]"... Files (paths) are left out: the runtime maps
    /// assemblies as it loads them, and a transport opens no files.
    /// </summary>
    public static Dictionary<int, string> List()
    {
        var fds = new Dictionary<int, string>();
        foreach (string path in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            if (!int.TryParse(Path.GetFileName(path), out int fd)) continue;
            string? target;
            try
            {
                target = new FileInfo(path).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed while we looked
            }
            if (target is null || target.StartsWith('/')) continue; // a file (or the listing itself)
            fds[fd] = target;
        }
        return fds;
    }

    /// <summary>What differs between two listings, by kind ("socket", "anon_inode:[io_uring]", a path): "+2 socket, -1 pipe".</summary>
    public static string Diff(Dictionary<int, string> before, Dictionary<int, string> after)
    {
        static string Kind(string target) => target.StartsWith("socket:", StringComparison.Ordinal) ? "socket"
            : target.StartsWith("pipe:", StringComparison.Ordinal) ? "pipe" : target;
        var counts = new Dictionary<string, int>();
        foreach (string t in before.Values) counts[Kind(t)] = counts.GetValueOrDefault(Kind(t)) - 1;
        foreach (string t in after.Values) counts[Kind(t)] = counts.GetValueOrDefault(Kind(t)) + 1;
        string diff = string.Join(", ", counts.Where(c => c.Value != 0).OrderByDescending(c => c.Value).Select(c => $"{c.Value:+0;-0} {c.Key}"));
        return diff.Length == 0 ? "same kinds" : diff;
    }
}
