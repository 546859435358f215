using System.Globalization;
using System.Text.RegularExpressions;
using Uring.Perf.Runner.Processes;

namespace Uring.Perf.Runner.Measure;

/// <summary>
/// The CPU time a command (the load tool, with perf around it) used, from the shell's
/// <c>times</c> builtin run after it: user and system time of the shell's waited-for children.
/// That is the load generator's own CPU, which other load on its core does not inflate.
/// </summary>
internal static partial class ChildCpu
{
    private const string Script = "\"$@\"; rc=$?; times >&2; exit $rc";

    public static IReadOnlyList<string> Wrap(IReadOnlyList<string> command) => ["sh", "-c", Script, "sh", .. command];

    /// <summary>The command's result without the <c>times</c> lines, and its children's CPU seconds (null if not printed).</summary>
    public static (CommandResult Result, double? CpuSeconds) Split(CommandResult result)
    {
        string[] lines = result.StdErr.TrimEnd('\n').Split('\n');
        // `times` prints two lines, the shell's own times, then its children's.
        if (lines.Length >= 2 && TimesRegex().Match(lines[^1]) is { Success: true } children && TimesRegex().IsMatch(lines[^2]))
        {
            double seconds = Seconds(children.Groups[1].Value, children.Groups[2].Value) + Seconds(children.Groups[3].Value, children.Groups[4].Value);
            string rest = string.Join('\n', lines[..^2]);
            return (result with { StdErr = rest.Length > 0 ? rest + "\n" : "" }, seconds);
        }
        return (result, null);
    }

    private static double Seconds(string minutes, string seconds) =>
        int.Parse(minutes, CultureInfo.InvariantCulture) * 60 + double.Parse(seconds, CultureInfo.InvariantCulture);

    // dash: "0m1.650000s 0m2.310000s"; bash: "0m1.650s 0m2.310s".
    [GeneratedRegex(@"^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$")]
    private static partial Regex TimesRegex();
}
