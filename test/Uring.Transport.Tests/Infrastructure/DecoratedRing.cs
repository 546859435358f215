namespace Uring.Transport.Tests.Infrastructure;

/// <summary>
/// An <see cref="IRing"/> that forwards every call to the loop's real ring. Tests derive from it to
/// change what the transport sees (hold, rewrite or invent completions, fail a call, hide a
/// feature), installed through the options' <c>DecorateRing</c> hook. Every member is virtual.
/// </summary>
/// <remarks>
/// The loop calls it on its own thread only (except <see cref="Wake"/>), so subclasses need no
/// locks for state they touch in those calls.
/// </remarks>
internal unsafe class DecoratedRing(IRing inner) : IRing
{
    public IRing Inner { get; } = inner;

    public virtual RingEngine Engine => Inner.Engine;
    public virtual int SubmissionQueueSize => Inner.SubmissionQueueSize;
    public virtual int CompletionQueueSize => Inner.CompletionQueueSize;
    public virtual RingFeatures Features => Inner.Features;
    public virtual long Prepared => Inner.Prepared;
    public virtual long Consumed => Inner.Consumed;

    public virtual void Enable() => Inner.Enable();
    public virtual bool Supports(IoUringOp opcode) => Inner.Supports(opcode);
    public virtual int SubmitAndWait(int minComplete, int timeoutMs = -1) => Inner.SubmitAndWait(minComplete, timeoutMs);
    public virtual int DrainCompletions(Span<Completion> destination) => Inner.DrainCompletions(destination);
    public virtual void Wake() => Inner.Wake();
    public virtual int RegisterBufferRing(ProvidedBufferRing buffers) => Inner.RegisterBufferRing(buffers);
    public virtual int UnregisterBufferRing(ProvidedBufferRing buffers) => Inner.UnregisterBufferRing(buffers);
    public virtual int AvailableBuffers(ProvidedBufferRing buffers) => Inner.AvailableBuffers(buffers);
    public virtual int RegisterBuffers(ReadOnlySpan<IoVec> buffers) => Inner.RegisterBuffers(buffers);
    public virtual int UnregisterBuffers() => Inner.UnregisterBuffers();
    public virtual int RegisterBufferTable(int count) => Inner.RegisterBufferTable(count);
    public virtual int UpdateBuffer(int index, void* address, nuint length) => Inner.UpdateBuffer(index, address, length);
    public virtual void PrepareWriteFixed(int fd, byte* buffer, int length, int bufferIndex, ulong userData) =>
        Inner.PrepareWriteFixed(fd, buffer, length, bufferIndex, userData);
    public virtual void Dispose() => Inner.Dispose();

    public virtual void PrepareNop(ulong userData) => Inner.PrepareNop(userData);
    public virtual void PrepareAccept(int fd, byte* addr, uint* addrLen, int flags, ulong userData) => Inner.PrepareAccept(fd, addr, addrLen, flags, userData);
    public virtual void PrepareAcceptMultishot(int fd, int flags, ulong userData) => Inner.PrepareAcceptMultishot(fd, flags, userData);
    public virtual void PrepareRecv(int fd, byte* buffer, int length, int flags, ulong userData) => Inner.PrepareRecv(fd, buffer, length, flags, userData);
    public virtual void PrepareRecvBufferSelect(int fd, ushort bufferGroup, int flags, ulong userData, int maxLength = 0) =>
        Inner.PrepareRecvBufferSelect(fd, bufferGroup, flags, userData, maxLength);
    public virtual void PrepareRecvMultishot(int fd, ushort bufferGroup, int flags, ulong userData) => Inner.PrepareRecvMultishot(fd, bufferGroup, flags, userData);
    public virtual void PrepareSend(int fd, byte* buffer, int length, int flags, ulong userData) => Inner.PrepareSend(fd, buffer, length, flags, userData);
    public virtual void PrepareSendMsg(int fd, MsgHdr* message, int flags, ulong userData) => Inner.PrepareSendMsg(fd, message, flags, userData);
    public virtual void PrepareSendZc(int fd, byte* buffer, int length, int flags, int fixedBufferIndex, ulong userData, bool reportUsage = false) =>
        Inner.PrepareSendZc(fd, buffer, length, flags, fixedBufferIndex, userData, reportUsage);
    public virtual void PrepareSendMsgZc(int fd, MsgHdr* message, int flags, ulong userData, bool reportUsage = false) =>
        Inner.PrepareSendMsgZc(fd, message, flags, userData, reportUsage);
    public virtual void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData) => Inner.PrepareConnect(fd, addr, addrLen, userData);
    public virtual void PrepareRead(int fd, byte* buffer, int length, ulong offset, ulong userData) => Inner.PrepareRead(fd, buffer, length, offset, userData);
    public virtual void PrepareClose(int fd, ulong userData) => Inner.PrepareClose(fd, userData);
    public virtual void PrepareShutdown(int fd, int how, ulong userData) => Inner.PrepareShutdown(fd, how, userData);
    public virtual void PrepareCancel(ulong targetUserData, ulong userData) => Inner.PrepareCancel(targetUserData, userData);
    public virtual void PrepareCancelFd(int fd, bool all, ulong userData) => Inner.PrepareCancelFd(fd, all, userData);
    public virtual void PrepareCancelAll(ulong userData) => Inner.PrepareCancelAll(userData);
    public virtual void PreparePollAdd(int fd, uint pollEvents, bool multishot, ulong userData) => Inner.PreparePollAdd(fd, pollEvents, multishot, userData);
}
