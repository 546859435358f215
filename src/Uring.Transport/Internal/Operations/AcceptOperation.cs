using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// An acceptor's accept on its listening socket: multishot where the kernel has it (5.19), else one
/// connection per arm. Owns no memory (the peer's address is not asked for); each accepted fd goes
/// to the acceptor with the completion that carries it. In the kernel from its submit to its final
/// completion; one per acceptor, reused.
/// </summary>
internal sealed class AcceptOperation(Acceptor acceptor, IoLoop loop) : KernelOperation(loop, OpKind.Accept)
{
    private const int AcceptFlags = Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC;
    private int _fd;
    private bool _multishot;

    public override ILoopMember? Owner => acceptor;

    /// <summary>Arms the accept on <paramref name="fd"/>; false when it could not be queued.</summary>
    public bool Start(int fd, bool multishot)
    {
        _fd = fd;
        _multishot = multishot;
        return Submit();
    }

    protected override void Prepare(IRing ring)
    {
        if (_multishot) ring.PrepareAcceptMultishot(_fd, AcceptFlags, UserData);
        else ring.PrepareAccept(_fd, AcceptFlags, UserData);
    }

    public override void Complete(in Completion completion)
    {
        bool final = !completion.HasMore;
        if (final) Finished();
        acceptor.OnAccept(completion.Result, final);
    }

    // Nothing of ours for the kernel to touch; an fd it accepts comes only with a completion.
    public override void Abandon()
    {
    }
}
