using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Uring.Perf;

/// <summary>
/// Walks a command line of "--name value", "--name=value" and flags, for the perf programs (each
/// links this file). Every error is an <see cref="ArgumentException"/> naming the option.
/// </summary>
internal sealed class CommandLine(string[] args)
{
    private int _index = -1;
    private string? _attached; // the value of "--name=value"

    /// <summary>The current option's name, e.g. "--runs".</summary>
    public string Name { get; private set; } = "";

    public bool MoveNext()
    {
        if (++_index >= args.Length) return false;
        string arg = args[_index];
        int eq = arg.IndexOf('=');
        if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
        {
            Name = arg[..eq];
            _attached = arg[(eq + 1)..];
        }
        else
        {
            Name = arg;
            _attached = null;
        }
        return true;
    }

    public string Value()
    {
        if (_attached is not null) return _attached;
        if (_index + 1 >= args.Length) throw new ArgumentException($"{Name} needs a value");
        return args[++_index];
    }

    public int Int(int min)
    {
        string text = Value();
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= min
            ? n
            : throw new ArgumentException($"{Name} needs an integer >= {min}, got '{text}'");
    }

    public double Number(double min, double max = double.MaxValue)
    {
        string text = Value();
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) && d >= min && d <= max
            ? d
            : throw new ArgumentException(max == double.MaxValue
                ? $"{Name} needs a number >= {min}, got '{text}'"
                : $"{Name} needs a number from {min} to {max}, got '{text}'");
    }

    /// <summary>The current option is a flag: "--name=value" is an error.</summary>
    public bool Flag() => _attached is null ? true : throw new ArgumentException($"{Name} takes no value");

    public ArgumentException Unknown() => new($"unknown argument '{args[_index]}'");

    /// <summary>
    /// Runs <paramref name="parse"/> (null: help was asked for). False when the program should exit
    /// with <paramref name="exitCode"/>: 0 after printing the usage, 2 after naming the bad option.
    /// </summary>
    public static bool TryParse<T>(string[] args, string usage, Func<string[], T?> parse,
        [NotNullWhen(true)] out T? result, out int exitCode) where T : class
    {
        exitCode = 0;
        try
        {
            result = parse(args);
            if (result is not null) return true;
            Console.WriteLine(usage);
            return false;
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            Console.Error.WriteLine(usage);
            result = null;
            exitCode = 2;
            return false;
        }
    }
}
