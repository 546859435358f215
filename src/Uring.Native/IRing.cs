namespace Uring.Native;

/// <summary>
/// A completion-based I/O ring: operations are prepared, submitted in one batch, and each
/// produces completions (user_data, result, flags) exactly as io_uring's CQEs do.
/// Implemented by <see cref="IoUringRing"/> (the kernel's io_uring) and <see cref="EpollRing"/>
/// (a readiness-driven emulation over edge-triggered epoll). All members except
/// <see cref="Wake"/> must be called on the ring's owning thread (the one that called
/// <see cref="Enable"/>).
/// </summary>
/// <remarks>
/// Results follow the kernel: a non-negative value on success, a negative errno on failure.
/// Pointers handed to a prepare call must stay valid until that operation's final completion
/// (a completion without <see cref="CompletionFlags.More"/>).
/// Multishot operations keep producing completions flagged <see cref="CompletionFlags.More"/>
/// until a final one arrives (after cancellation, an error, or end of stream).
/// </remarks>
public unsafe interface IRing : IDisposable
{
    /// <summary>Which kind of ring this is.</summary>
    RingEngine Engine { get; }

    /// <summary>Number of submission queue entries.</summary>
    int SubmissionQueueSize { get; }

    /// <summary>Number of completion queue entries.</summary>
    int CompletionQueueSize { get; }

    /// <summary>
    /// The optional features this ring can use (the kernel's, less any test limit; for epoll, what
    /// it emulates). Code above the ring uses a feature only when it is listed, with a fallback.
    /// </summary>
    RingFeatures Features { get; }

    /// <summary>Operations prepared on this ring so far: a running count, so the last prepare's ticket is this value.</summary>
    long Prepared { get; }

    /// <summary>Operations the kernel (or the emulation) has taken from the submission queue so far: ticket t was submitted when t &lt;= this.</summary>
    long Consumed { get; }

    /// <summary>Binds the ring to the calling thread and enables it. Call once, on the owning thread.</summary>
    void Enable();

    /// <summary>True when the ring can perform <paramref name="opcode"/>.</summary>
    bool Supports(IoUringOp opcode);

    /// <summary>
    /// Submits every prepared operation and waits until at least <paramref name="minComplete"/>
    /// completions are available, a <see cref="Wake"/> arrives, or <paramref name="timeoutMs"/>
    /// elapses (-1: no limit). Returns the number of operations submitted, or a negative errno
    /// for a failure other than interruption.
    /// </summary>
    int SubmitAndWait(int minComplete, int timeoutMs = -1);

    /// <summary>Submits every prepared operation without waiting.</summary>
    int Submit() => SubmitAndWait(0, 0);

    /// <summary>
    /// Copies available completions into <paramref name="destination"/> and consumes them;
    /// returns how many were copied. Allocates nothing.
    /// </summary>
    int DrainCompletions(Span<Completion> destination);

    /// <summary>Wakes the owning thread out of <see cref="SubmitAndWait"/>. Safe from any thread.</summary>
    void Wake();

    /// <summary>Registers a provided-buffer ring so that receives with buffer select can draw from it.</summary>
    int RegisterBufferRing(ProvidedBufferRing buffers);

    /// <summary>Removes a provided-buffer ring registered with <see cref="RegisterBufferRing"/>.</summary>
    int UnregisterBufferRing(ProvidedBufferRing buffers);

    /// <summary>
    /// How many of <paramref name="buffers"/>' buffers the ring can hand out right now (published and
    /// not yet taken), or a negative errno when this ring cannot tell (io_uring before 6.8).
    /// </summary>
    int AvailableBuffers(ProvidedBufferRing buffers);

    /// <summary>Registers fixed buffers (IORING_REGISTER_BUFFERS) for <c>*_FIXED</c> operations.</summary>
    int RegisterBuffers(ReadOnlySpan<IoVec> buffers);

    /// <summary>Unregisters the fixed buffers.</summary>
    int UnregisterBuffers();

    /// <summary>
    /// IORING_REGISTER_BUFFERS2 with IORING_RSRC_REGISTER_SPARSE (5.19): an empty fixed-buffer table of
    /// <paramref name="count"/> entries, filled later by <see cref="UpdateBuffer"/>. 0 or a negative errno.
    /// </summary>
    int RegisterBufferTable(int count);

    /// <summary>
    /// IORING_REGISTER_BUFFERS_UPDATE (5.13): entry <paramref name="index"/> of the table becomes the
    /// <paramref name="length"/> bytes at <paramref name="address"/> (the kernel pins them until the
    /// entry is replaced or the ring goes). 1 on success, or a negative errno (ENOMEM past RLIMIT_MEMLOCK).
    /// </summary>
    int UpdateBuffer(int index, void* address, nuint length);

    // One prepare method per opcode, named after it. Each returns nothing: when the submission
    // queue is full, the ring submits what it holds and then queues the new entry.

    /// <summary>IORING_OP_NOP (5.1).</summary>
    void PrepareNop(ulong userData);

    /// <summary>IORING_OP_ACCEPT (5.5). <paramref name="addr"/>/<paramref name="addrLen"/> may be null.</summary>
    void PrepareAccept(int fd, byte* addr, uint* addrLen, int flags, ulong userData);

    /// <summary>IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT (5.19): one completion per accepted connection.</summary>
    void PrepareAcceptMultishot(int fd, int flags, ulong userData);

    /// <summary>IORING_OP_RECV (5.6) into a caller buffer.</summary>
    void PrepareRecv(int fd, byte* buffer, int length, int flags, ulong userData);

    /// <summary>IORING_OP_RECV with IOSQE_BUFFER_SELECT (5.7 legacy, 5.19 ring): the kernel picks a buffer from <paramref name="bufferGroup"/>.</summary>
    /// <remarks><paramref name="maxLength"/> &gt; 0 receives at most that many bytes into the buffer (sqe->len); 0: the buffer's size.</remarks>
    void PrepareRecvBufferSelect(int fd, ushort bufferGroup, int flags, ulong userData, int maxLength = 0);

    /// <summary>IORING_OP_RECV with IORING_RECV_MULTISHOT and buffer select (6.0).</summary>
    void PrepareRecvMultishot(int fd, ushort bufferGroup, int flags, ulong userData);

    /// <summary>IORING_OP_SEND (5.6).</summary>
    void PrepareSend(int fd, byte* buffer, int length, int flags, ulong userData);

    /// <summary>IORING_OP_SENDMSG (5.3).</summary>
    void PrepareSendMsg(int fd, MsgHdr* message, int flags, ulong userData);

    /// <summary>
    /// IORING_OP_SEND_ZC (6.0); with <paramref name="fixedBufferIndex"/> &gt;= 0, from a registered buffer
    /// (IORING_RECVSEND_FIXED_BUF). Produces a result completion flagged <see cref="CompletionFlags.More"/>
    /// and then a notification flagged <see cref="CompletionFlags.Notification"/> once the kernel is done
    /// with the memory. With <paramref name="reportUsage"/> (IORING_SEND_ZC_REPORT_USAGE, 6.2) the
    /// notification's result has <see cref="CompletionFlags.ZeroCopyCopied"/> set when the kernel copied the data.
    /// </summary>
    void PrepareSendZc(int fd, byte* buffer, int length, int flags, int fixedBufferIndex, ulong userData, bool reportUsage = false);

    /// <summary>
    /// IORING_OP_WRITE_FIXED (5.1): writes <paramref name="length"/> bytes at <paramref name="buffer"/>,
    /// which lie inside registered buffer <paramref name="bufferIndex"/>, to <paramref name="fd"/> (a
    /// socket: a send without the user-memory walk). A write to a reset peer answers EPIPE (the
    /// runtime ignores SIGPIPE).
    /// </summary>
    void PrepareWriteFixed(int fd, byte* buffer, int length, int bufferIndex, ulong userData);

    /// <summary>
    /// IORING_OP_SENDMSG_ZC (6.1): <see cref="PrepareSendMsg"/> without copying the data: as with
    /// <see cref="PrepareSendZc"/>, a result completion flagged <see cref="CompletionFlags.More"/>,
    /// then a notification once the kernel no longer reads the memory (the data pages, not the
    /// iovecs or the msghdr, which it has read by the result).
    /// </summary>
    void PrepareSendMsgZc(int fd, MsgHdr* message, int flags, ulong userData, bool reportUsage = false);

    /// <summary>IORING_OP_CONNECT (5.5).</summary>
    void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData);

    /// <summary>IORING_OP_READ (5.6).</summary>
    void PrepareRead(int fd, byte* buffer, int length, ulong offset, ulong userData);

    /// <summary>IORING_OP_CLOSE (5.6).</summary>
    void PrepareClose(int fd, ulong userData);

    /// <summary>IORING_OP_SHUTDOWN (5.11).</summary>
    void PrepareShutdown(int fd, int how, ulong userData);

    /// <summary>IORING_OP_ASYNC_CANCEL (5.5) of the operation submitted with <paramref name="targetUserData"/>.</summary>
    void PrepareCancel(ulong targetUserData, ulong userData);

    /// <summary>IORING_OP_ASYNC_CANCEL with IORING_ASYNC_CANCEL_FD (5.19), optionally _ALL: cancels operations on <paramref name="fd"/>.</summary>
    void PrepareCancelFd(int fd, bool all, ulong userData);

    /// <summary>IORING_OP_ASYNC_CANCEL with IORING_ASYNC_CANCEL_ANY | _ALL (5.19): cancels every request in flight; the result is how many.</summary>
    void PrepareCancelAll(ulong userData);

    /// <summary>IORING_OP_POLL_ADD (5.1); <paramref name="multishot"/> uses IORING_POLL_ADD_MULTI (5.13).</summary>
    void PreparePollAdd(int fd, uint pollEvents, bool multishot, ulong userData);
}
