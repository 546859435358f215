using Microsoft.Extensions.Options;
using Uring.Transport.Internal;

namespace Uring.Transport;

/// <summary>Checks <see cref="UringTransportOptions"/> at start-up; each failure names the option.</summary>
internal sealed class UringTransportOptionsValidator : IValidateOptions<UringTransportOptions>
{
    /// <summary>Throws <see cref="OptionsValidationException"/> naming every invalid option.</summary>
    public static void ThrowIfInvalid(UringTransportOptions options)
    {
        ValidateOptionsResult validation = new UringTransportOptionsValidator().Validate(Options.DefaultName, options);
        if (validation.Failed)
            throw new OptionsValidationException(Options.DefaultName, typeof(UringTransportOptions), validation.Failures);
    }

    public ValidateOptionsResult Validate(string? name, UringTransportOptions o)
    {
        var failures = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok) failures.Add(message);
        }
        static bool PowerOfTwo(int v) => v > 0 && (v & (v - 1)) == 0;

        Check(Enum.IsDefined(o.Engine), $"UringTransportOptions.Engine (Uring:Engine in configuration) must be Auto, IoUring or Epoll (was {(int)o.Engine}).");
        Check(Enum.IsDefined(o.LoopAffinity), $"UringTransportOptions.LoopAffinity (Uring:LoopAffinity in configuration) must be Auto, Pinned or None (was {(int)o.LoopAffinity}).");
        Check(Enum.IsDefined(o.ListenerSteering), $"UringTransportOptions.ListenerSteering (Uring:ListenerSteering in configuration) must be Auto or Hash (was {(int)o.ListenerSteering}).");
        Check(o.RingCount >= 1 && o.RingCount <= 1024, $"UringTransportOptions.RingCount (Uring:RingCount in configuration) must be between 1 and 1024 (was {o.RingCount}).");
        Check(PowerOfTwo(o.RingEntries) && o.RingEntries >= 8 && o.RingEntries <= 32768,
            $"UringTransportOptions.RingEntries (Uring:RingEntries in configuration) must be a power of two between 8 and 32768 (was {o.RingEntries}).");
        Check(o.ProvidedBufferSize >= 512 && o.ProvidedBufferSize <= 1024 * 1024,
            $"UringTransportOptions.ProvidedBufferSize (Uring:ProvidedBufferSize in configuration) must be between 512 and 1048576 bytes (was {o.ProvidedBufferSize}).");
        Check(PowerOfTwo(o.ProvidedBufferCount) && o.ProvidedBufferCount <= 32768,
            $"UringTransportOptions.ProvidedBufferCount (Uring:ProvidedBufferCount in configuration) must be a power of two between 1 and 32768 (was {o.ProvidedBufferCount}).");
        Check(o.ZeroCopySendThreshold >= 0, $"UringTransportOptions.ZeroCopySendThreshold (Uring:ZeroCopySendThreshold in configuration) must be 0 (off) or a positive number of bytes (was {o.ZeroCopySendThreshold}).");
        Check(o.Backlog >= 1, $"UringTransportOptions.Backlog (Uring:Backlog in configuration) must be at least 1 (was {o.Backlog}).");
        Check(o.MaxReadBufferSize is null || o.MaxReadBufferSize >= 0,
            $"UringTransportOptions.MaxReadBufferSize (Uring:MaxReadBufferSize in configuration) must be null or non-negative (was {o.MaxReadBufferSize}).");
        Check(o.MaxWriteBufferSize is null || o.MaxWriteBufferSize >= 0,
            $"UringTransportOptions.MaxWriteBufferSize (Uring:MaxWriteBufferSize in configuration) must be null or non-negative (was {o.MaxWriteBufferSize}).");
        try
        {
            EngineSelector.ParseFeatures(o.DisabledKernelFeatures);
        }
        catch (ArgumentException e)
        {
            failures.Add($"UringTransportOptions.DisabledKernelFeatures (Uring:DisabledKernelFeatures in configuration): {e.Message}");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
