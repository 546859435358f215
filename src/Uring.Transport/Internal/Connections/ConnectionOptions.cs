using System.IO.Pipelines;

namespace Uring.Transport.Internal;

/// <summary>
/// What the connections opened with one shape of options share on one loop group: the memory pool,
/// where application code runs (<see cref="UringTransportOptions.UnsafePreferInlineScheduling"/>), the
/// pipe limits, and the pipe options built from them once per loop (PipeOptions is immutable). The
/// group keeps one per shape (<see cref="IoLoopGroup.ConnectionOptionsFor"/>): a server's, and each
/// client's whose limits differ.
/// </summary>
internal sealed class ConnectionOptions
{
    /// <summary>Bytes one bulk receive asks for (less under a small MaxReadBufferSize).</summary>
    public const int BulkReceiveSize = 64 * 1024;

    private readonly PipeOptions[] _input;
    private readonly PipeOptions[] _output;

    public ConnectionOptions(IoLoopGroup group, long maxRead, long maxWrite, bool inline)
    {
        Pool = group.Pool;
        MaxRead = maxRead;
        MaxWrite = maxWrite;
        Inline = inline;
        PipeScheduler application = inline ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
        // The input's writer and the output's reader run on the loop; the application's ends where it says.
        _input = [.. group.Loops.Select(loop => new PipeOptions(Pool, application, loop, maxRead, maxRead / 2, useSynchronizationContext: false))];
        _output = [.. group.Loops.Select(loop => new PipeOptions(Pool, loop, application, maxWrite, maxWrite / 2, useSynchronizationContext: false))];
        // Under a read limit, flush as soon as half of it is waiting, not only at the end of a batch:
        // a multishot receive can deliver many buffers in one batch, and the limit must hold.
        EagerFlushBytes = maxRead > 0 ? Math.Max(1, maxRead / 2) : long.MaxValue;
        // A bulk receive may overshoot the read limit by itself: at most half the limit.
        BulkReceive = maxRead > 0 ? (int)Math.Clamp(maxRead / 2, 1, BulkReceiveSize) : BulkReceiveSize;
    }

    public PinnedBlockMemoryPool Pool { get; }

    /// <summary>MaxReadBufferSize (0: no limit).</summary>
    public long MaxRead { get; }

    /// <summary>MaxWriteBufferSize (0: no limit).</summary>
    public long MaxWrite { get; }

    public bool Inline { get; }

    public long EagerFlushBytes { get; }

    public int BulkReceive { get; }

    public PipeOptions InputFor(IoLoop loop) => _input[loop.Index];

    public PipeOptions OutputFor(IoLoop loop) => _output[loop.Index];
}
