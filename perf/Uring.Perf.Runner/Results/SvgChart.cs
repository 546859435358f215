using System.Globalization;
using System.Security;
using System.Text;

namespace Uring.Perf.Runner.Results;

/// <summary>
/// chart.svg, written by hand: two panels of grouped bars, median requests/s and median server
/// CPU µs per request, one group per scenario and one bar per contender. Scenarios differ by an
/// order of magnitude (pipelining), so each group is scaled to its own largest bar and every bar
/// carries its number. The idle scenario (memory, not requests) is left out: its table is in the
/// report. A defaults-pass group is labelled "defaults (unpinned)" under its name.
/// </summary>
internal static class SvgChart
{
    private const int BarWidth = 26;
    private const int BarGap = 4;
    private const int GroupGap = 36;
    private const int MinGroupSlot = 140; // room for the longest scenario name under its group
    private const int Left = 20;
    private const int PanelHeight = 190;
    private const int PanelTop = 64;
    private const int PanelSpacing = 70;

    private static readonly Dictionary<string, string> s_colors = new()
    {
        ["sockets"] = "#8c8c8c",
        ["sockets-inline"] = "#c7c7c7",
        ["uring"] = "#1f77b4",
        ["uring-inline"] = "#9467bd",
        ["uring-epoll"] = "#2ca02c",
        // The baseline build's twins (--baseline-build): a lighter shade of their counterpart's colour.
        ["uring@base"] = "#aec7e8",
        ["uring-epoll@base"] = "#98df8a",
        ["uring-inline@base"] = "#c5b0d5",
    };

    private static readonly string[] s_fallbackColors = ["#d62728", "#ff7f0e", "#17becf", "#bcbd22"];

    public static string Render(RunsFile file)
    {
        // Server contenders, then any other row names (the client scenario's handlers).
        var contenders = file.Contenders.Select(c => c.Name).Concat(file.Runs.Select(r => r.Contender)).Distinct().ToList();
        var groups = MarkdownReport.Ordered(file)
            .Where(s => !s.Idle)
            .Select(s => (Scenario: s, Rows: s.Supported ? Summary.Of(file, s.Name) : []))
            .ToList();

        int groupWidth = Math.Max(1, contenders.Count) * (BarWidth + BarGap) - BarGap;
        int slot = Math.Max(MinGroupSlot, groupWidth + GroupGap);
        bool pinned = file.Settings.Passes is null || file.Settings.Passes.Contains("pinned");
        string placement = (pinned ? $"server CPU {file.Machine.ServerCpus}, load CPU {file.Machine.LoadCpus}" : "")
            + (pinned && groups.Any(g => g.Scenario.Unpinned) ? "; " : "")
            + (groups.Any(g => g.Scenario.Unpinned) ? $"{Placement.DefaultsLabel}: nothing pinned" : "");
        string subtitle = $"{file.StartedUtc:yyyy-MM-dd} · kernel {file.Machine.Kernel} · {placement} · medians of {file.Settings.Runs} runs · bars scaled per scenario";
        int width = Math.Max(Left * 2 + subtitle.Length * 6, Left * 2 + groups.Count * slot);
        int height = PanelTop + 2 * PanelHeight + PanelSpacing + 60;

        var svg = new StringBuilder();
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">""");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<rect width="{width}" height="{height}" fill="white"/>""");
        string title = "Uring.Transport benchmark" + (file.Quick ? " (QUICK smoke run: not results)" : "") + (file.Interrupted ? " (interrupted)" : "");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{Left}" y="20" font-size="15" font-weight="bold">{Esc(title)}</text>""");
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{Left}" y="36" fill="#555">{Esc(subtitle)}</text>""");

        // Legend.
        int x = Left;
        for (int i = 0; i < contenders.Count; i++)
        {
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<rect x="{x}" y="44" width="12" height="12" fill="{Color(contenders[i], i)}"/>""");
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{x + 16}" y="54">{Esc(contenders[i])}</text>""");
            x += 24 + contenders[i].Length * 7;
        }

        Panel(svg, groups, contenders, PanelTop, "median requests/s (higher is better)",
            r => r.MedianRps, v => Short(v), groupWidth, slot);
        Panel(svg, groups, contenders, PanelTop + PanelHeight + PanelSpacing, "median CPU µs per request, the server's (client-64: the client's) (lower is better)",
            r => r.MedianCpuUsPerRequest, v => v.ToString("0.0", CultureInfo.InvariantCulture), groupWidth, slot);

        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static void Panel(
        StringBuilder svg,
        List<(ScenarioRecord Scenario, List<ContenderSummary> Rows)> groups,
        List<string> contenders,
        int top,
        string title,
        Func<ContenderSummary, double?> value,
        Func<double, string> label,
        int groupWidth,
        int slot)
    {
        int baseline = top + PanelHeight;
        int barTop = top + 34; // room for the title and the value labels
        svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{Left}" y="{top + 12}" font-size="13" font-weight="bold">{Esc(title)}</text>""");
        int x = Left + (slot - groupWidth) / 2;
        foreach (var (scenario, rows) in groups)
        {
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<line x1="{x - 4}" y1="{baseline}" x2="{x + groupWidth + 4}" y2="{baseline}" stroke="#333"/>""");
            svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{x + groupWidth / 2}" y="{baseline + 16}" text-anchor="middle">{Esc(MarkdownReport.BaseName(scenario))}</text>""");
            if (scenario.Unpinned)
            {
                svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{x + groupWidth / 2}" y="{baseline + 28}" text-anchor="middle" font-size="9" fill="#555">{Esc(Placement.DefaultsLabel)}</text>""");
            }
            double max = rows.Select(value).Where(v => v is not null).Select(v => v!.Value).DefaultIfEmpty(0).Max();
            if (max <= 0)
            {
                string why = scenario.Supported ? "no data" : "not run";
                svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{x + groupWidth / 2}" y="{baseline - 10}" text-anchor="middle" fill="#999">{why}</text>""");
            }
            else
            {
                for (int i = 0; i < contenders.Count; i++)
                {
                    var row = rows.FirstOrDefault(r => r.Contender == contenders[i]);
                    int bx = x + i * (BarWidth + BarGap);
                    if (row is null || value(row) is not double v)
                    {
                        continue;
                    }
                    int h = (int)Math.Round((baseline - barTop) * v / max);
                    svg.AppendLine(CultureInfo.InvariantCulture, $"""<rect x="{bx}" y="{baseline - h}" width="{BarWidth}" height="{h}" fill="{Color(contenders[i], i)}"><title>{Esc($"{contenders[i]} {MarkdownReport.Title(scenario)}: {label(v)}")}</title></rect>""");
                    svg.AppendLine(CultureInfo.InvariantCulture, $"""<text x="{bx + BarWidth / 2}" y="{baseline - h - 4}" text-anchor="middle" font-size="9">{Esc(label(v))}</text>""");
                }
            }
            x += slot;
        }
    }

    private static string Color(string contender, int index) =>
        s_colors.TryGetValue(contender, out string? c) ? c : s_fallbackColors[index % s_fallbackColors.Length];

    private static string Short(double v) => v switch
    {
        >= 1e6 => (v / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + "M",
        >= 1e3 => (v / 1e3).ToString("0", CultureInfo.InvariantCulture) + "k",
        _ => v.ToString("0", CultureInfo.InvariantCulture),
    };

    private static string Esc(string text) => SecurityElement.Escape(text) ?? "";
}
