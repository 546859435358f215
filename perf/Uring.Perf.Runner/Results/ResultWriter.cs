using System.Text.Json;

namespace Uring.Perf.Runner.Results;

/// <summary>Writes report.md, runs.json and chart.svg, and refreshes perf/results/latest/.</summary>
internal static class ResultWriter
{
    private static readonly string[] s_files = ["report.md", "runs.json", "chart.svg"];

    /// <summary>Writes the three files (without <paramref name="rawRuns"/>, only the report and the chart) into <paramref name="dir"/>; returns the report's text.</summary>
    public static string Write(RunsFile file, string dir, bool rawRuns = true)
    {
        Directory.CreateDirectory(dir);
        string report = MarkdownReport.Render(file);
        File.WriteAllText(Path.Combine(dir, "report.md"), report);
        if (rawRuns)
        {
            File.WriteAllText(Path.Combine(dir, "runs.json"), file.ToJson());
        }
        File.WriteAllText(Path.Combine(dir, "chart.svg"), SvgChart.Render(file));
        return report;
    }

    /// <summary>
    /// Copies the three files to <paramref name="latestDir"/>, unless this run is a quick one (or
    /// interrupted) and latest/ holds a complete full run, which it must not hide. Returns what it did.
    /// </summary>
    public static string UpdateLatest(RunsFile file, string runDir, string latestDir)
    {
        bool partial = file.Quick || file.Interrupted;
        if (partial && LatestIsFullRun(latestDir))
        {
            return $"{latestDir} keeps the full run it holds (this run was {(file.Quick ? "--quick" : "interrupted")})";
        }
        Directory.CreateDirectory(latestDir);
        foreach (string name in s_files)
        {
            File.Copy(Path.Combine(runDir, name), Path.Combine(latestDir, name), overwrite: true);
        }
        return $"copied to {latestDir}";
    }

    private static bool LatestIsFullRun(string latestDir)
    {
        string path = Path.Combine(latestDir, "runs.json");
        if (!File.Exists(path))
        {
            return false;
        }
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            bool quick = root.TryGetProperty("quick", out var q) && q.ValueKind == JsonValueKind.True;
            bool interrupted = root.TryGetProperty("interrupted", out var i) && i.ValueKind == JsonValueKind.True;
            return !quick && !interrupted;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
