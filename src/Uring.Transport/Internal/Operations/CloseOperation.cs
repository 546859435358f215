using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// IORING_OP_CLOSE of a connection's socket, once nothing else of the connection is in the kernel
/// (the close then sends the FIN, or RST after SO_LINGER 0).
/// </summary>
/// <remarks>
/// Owns the fd from its submit (the connection's <see cref="ConnectionSocket"/> hands it over). The
/// kernel closes it; the completion says so. A loop that exits first closes it synchronously, unless
/// the kernel already took this close: then it may be closed, and its number another file's.
/// </remarks>
internal sealed class CloseOperation(IoLoop loop) : KernelOperation(loop, OpKind.Close)
{
    private UringConnection? _connection;
    private int _fd = -1;
    private long _ticket; // the ring's ticket of this prepare: did the kernel take it?

    public override ILoopMember? Owner => _connection;

    /// <summary>Closes <paramref name="fd"/> in the kernel; false (the fd still open and the caller's) when it could not be queued.</summary>
    public bool Start(UringConnection connection, int fd)
    {
        _connection = connection;
        _fd = fd;
        if (Submit()) return true;
        Release();
        return false;
    }

    protected override void Prepare(IRing ring)
    {
        ring.PrepareClose(_fd, UserData);
        _ticket = ring.Prepared;
    }

    public override void Complete(in Completion completion)
    {
        UringConnection connection = _connection!;
        Finished();
        Release();
        connection.OnClosed();
    }

    public override void Abandon()
    {
        if (!Loop.KernelTook(_ticket))
        {
            NativeSocket.SetLingerZero(_fd); // an abort: RST, as for every connection a stop ends
            NativeSocket.Close(_fd);
        }
        _connection = null;
    }

    private void Release()
    {
        _connection = null;
        _fd = -1;
        Loop.Operations.Closes.Return(this);
    }
}
