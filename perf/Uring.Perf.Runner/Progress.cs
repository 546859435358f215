using System.Diagnostics;

namespace Uring.Perf.Runner;

/// <summary>
/// Elapsed time and an estimate of what is left, from the planned seconds of every step
/// (warm-ups, runs x duration, pauses). Each finished or skipped step takes its planned share
/// off the estimate.
/// </summary>
internal sealed class Progress
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private double _plannedLeft;

    /// <summary>Sets the planned seconds of everything still to do.</summary>
    public void SetLeft(double seconds) => _plannedLeft = Math.Max(0, seconds);

    public void Done(double plannedSeconds) => _plannedLeft = Math.Max(0, _plannedLeft - plannedSeconds);

    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>"[1:23 elapsed, ~4:10 left]".</summary>
    public string Stamp() => $"[{Format(_clock.Elapsed)} elapsed, ~{Format(TimeSpan.FromSeconds(_plannedLeft))} left]";

    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{(int)t.TotalMinutes}:{t.Seconds:00}";
}
