using System.Buffers;
using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// A connection's receive of bulk data straight into its input pipe's memory: one recv of up to
/// 64 KiB into the writer's <c>GetMemory</c>, no copy.
/// </summary>
/// <remarks>
/// Owns that memory (and its pin) from its submit to its final completion; the connection neither
/// flushes nor completes its input writer meanwhile (either would give the memory back to the pipe).
/// At the completion it hands the memory back with the count received, which the connection
/// advances. A loop that exits with it in the kernel retires the memory: the pool never rents it
/// out again, whatever the pipe does with it.
/// </remarks>
internal sealed unsafe class DirectReceiveOperation(IoLoop loop) : KernelOperation(loop, OpKind.Recv)
{
    private UringConnection? _connection;
    private int _fd;
    private Memory<byte> _memory;
    private MemoryHandle _pin;

    public override ILoopMember? Owner => _connection;

    /// <summary>Arms the receive into <paramref name="memory"/>; false (nothing armed, the memory the pipe's again) when it could not be queued.</summary>
    public bool Start(UringConnection connection, int fd, Memory<byte> memory)
    {
        _connection = connection;
        _fd = fd;
        _memory = memory;
        _pin = memory.Pin(); // the pool's memory is pinned already: no GC handle
        if (Submit()) return true;
        Release();
        return false;
    }

    protected override void Prepare(IRing ring) => ring.PrepareRecv(_fd, (byte*)_pin.Pointer, _memory.Length, UserData);

    public override void Complete(in Completion completion)
    {
        UringConnection connection = _connection!;
        int asked = _memory.Length;
        Finished();
        Release();
        connection.OnReceivedDirect(completion.Result, asked);
    }

    public override void Abandon()
    {
        PinnedBlockMemoryPool.Retire(new ReadOnlySequence<byte>(_memory)); // the kernel may still write into it
        _connection = null;
    }

    private void Release()
    {
        _pin.Dispose();
        _pin = default;
        _memory = default;
        _connection = null;
        Loop.Operations.DirectReceives.Return(this);
    }
}
