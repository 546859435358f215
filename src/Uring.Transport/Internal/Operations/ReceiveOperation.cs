using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// A connection's receive into the loop's provided buffers: multishot where the kernel has it
/// (6.0), else one receive per arm (single-shot buffer select).
/// </summary>
/// <remarks>
/// Owns no memory while armed: a provided buffer is the kernel's until a completion names it. That
/// buffer is then this operation's: it lends it to the connection for the copy and recycles it
/// afterwards, also when the copy throws. In the kernel from its submit to its final completion
/// (one without More), then back to the loop's pool.
/// </remarks>
internal sealed class ReceiveOperation(IoLoop loop) : KernelOperation(loop, OpKind.Recv)
{
    private UringConnection? _connection;
    private int _fd;
    private bool _multishot;

    public override ILoopMember? Owner => _connection;

    /// <summary>Arms the receive; false (nothing armed) when it could not be queued.</summary>
    public bool Start(UringConnection connection, int fd, bool multishot)
    {
        _connection = connection;
        _fd = fd;
        _multishot = multishot;
        if (Submit()) return true;
        Release();
        return false;
    }

    protected override void Prepare(IRing ring)
    {
        if (_multishot) ring.PrepareRecvMultishot(_fd, ReceiveBuffers.Group, UserData);
        else ring.PrepareRecvBufferSelect(_fd, ReceiveBuffers.Group, UserData);
    }

    public override void Complete(in Completion completion)
    {
        UringConnection connection = _connection!;
        bool multishot = _multishot;
        if (!completion.HasMore)
        {
            Finished();
            Release(); // the connection may arm the next receive with this very object
        }
        try
        {
            connection.OnReceived(in completion, multishot);
        }
        finally
        {
            if (completion.HasBuffer) Loop.Buffers.Recycle(completion.BufferId);
        }
    }

    // The kernel holds none of this operation's memory (its buffers are the ring's, kept or freed with it).
    public override void Abandon() => _connection = null;

    private void Release()
    {
        _connection = null;
        Loop.Operations.Receives.Return(this);
    }
}
