using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Uring.Transport.Internal;

/// <summary>What a server's or a client's factory is made with: its options (validated), its logger and its environment.</summary>
internal readonly record struct FactorySetup(UringTransportOptions Options, ILogger Logger, TransportEnvironment Environment)
{
    /// <exception cref="OptionsValidationException">An option is invalid (the message names it).</exception>
    public static FactorySetup Of(IOptions<UringTransportOptions> options, ILoggerFactory loggerFactory, TransportEnvironment environment)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        UringTransportOptionsValidator.ThrowIfInvalid(options.Value);
        return new(options.Value, loggerFactory.CreateLogger(UringLog.Category), environment);
    }
}
