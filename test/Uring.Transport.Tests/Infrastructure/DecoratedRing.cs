namespace Uring.Transport.Tests.Infrastructure;

/// <summary>
/// An <see cref="IRing"/> that forwards every call to the loop's real ring. Tests derive from it to
/// change what the transport sees (hold, rewrite or invent completions, fail a call, hide a
/// feature), installed through the test environment's <c>DecorateRing</c>. Every member is virtual.
/// </summary>
/// <remarks>
/// The loop calls it on its own thread only (except <see cref="Wake"/>), so subclasses need no
/// locks for state they touch in those calls.
/// </remarks>
internal unsafe class DecoratedRing(IRing inner) : IRing
{
    public IRing Inner { get; } = inner;

    public virtual RingFeatures Features => Inner.Features;
    public virtual string Description => Inner.Description;
    public virtual int SubmissionQueueSize => Inner.SubmissionQueueSize;
    public virtual int CompletionQueueSize => Inner.CompletionQueueSize;
    public virtual long Prepared => Inner.Prepared;
    public virtual long Consumed => Inner.Consumed;

    public virtual void Enable() => Inner.Enable();
    public virtual int SubmitAndWait(int minComplete, int timeoutMs = -1) => Inner.SubmitAndWait(minComplete, timeoutMs);
    public virtual int DrainCompletions(Span<Completion> destination) => Inner.DrainCompletions(destination);
    public virtual void Wake() => Inner.Wake();
    public virtual int RegisterBufferRing(ProvidedBufferRing buffers) => Inner.RegisterBufferRing(buffers);
    public virtual int UnregisterBufferRing(ProvidedBufferRing buffers) => Inner.UnregisterBufferRing(buffers);
    public virtual int AvailableBuffers(ProvidedBufferRing buffers) => Inner.AvailableBuffers(buffers);
    public virtual int CancelSync(ulong targetUserData, int timeoutMs) => Inner.CancelSync(targetUserData, timeoutMs);
    public virtual void Dispose() => Inner.Dispose();

    public virtual void PrepareAccept(int fd, int flags, ulong userData) => Inner.PrepareAccept(fd, flags, userData);
    public virtual void PrepareAcceptMultishot(int fd, int flags, ulong userData) => Inner.PrepareAcceptMultishot(fd, flags, userData);
    public virtual void PrepareRecv(int fd, byte* buffer, int length, ulong userData) => Inner.PrepareRecv(fd, buffer, length, userData);
    public virtual void PrepareRecvBufferSelect(int fd, ushort bufferGroup, ulong userData, int maxLength = 0) =>
        Inner.PrepareRecvBufferSelect(fd, bufferGroup, userData, maxLength);
    public virtual void PrepareRecvMultishot(int fd, ushort bufferGroup, ulong userData) => Inner.PrepareRecvMultishot(fd, bufferGroup, userData);
    public virtual void PrepareSend(int fd, byte* buffer, int length, ulong userData) => Inner.PrepareSend(fd, buffer, length, userData);
    public virtual void PrepareSendMsg(int fd, MsgHdr* message, ulong userData) => Inner.PrepareSendMsg(fd, message, userData);
    public virtual void PrepareSendMsgZc(int fd, MsgHdr* message, ulong userData) => Inner.PrepareSendMsgZc(fd, message, userData);
    public virtual void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData) => Inner.PrepareConnect(fd, addr, addrLen, userData);
    public virtual void PrepareClose(int fd, ulong userData) => Inner.PrepareClose(fd, userData);
    public virtual void PrepareCancel(ulong targetUserData, ulong userData) => Inner.PrepareCancel(targetUserData, userData);
    public virtual void PrepareCancelAll(ulong userData) => Inner.PrepareCancelAll(userData);
}
