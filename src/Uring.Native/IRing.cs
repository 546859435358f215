namespace Uring.Native;

/// <summary>
/// A completion-based I/O ring: operations are prepared, submitted in one batch, and each produces
/// completions (user_data, result, flags) exactly as io_uring's CQEs do. Implemented by
/// <see cref="IoUringRing"/> (the kernel's io_uring) and <see cref="EpollRing"/> (the same
/// operations performed on readiness over edge-triggered epoll). It offers the operations the
/// transport issues and no others: each is prepared for both engines in one file under Ops/.
/// All members except <see cref="Wake"/> are called on the ring's owning thread (the one that
/// called <see cref="Enable"/>).
/// </summary>
/// <remarks>
/// Results follow the kernel: a non-negative value on success, a negative errno on failure.
/// Memory handed to a prepare call must stay valid until that operation's final completion (one
/// without <see cref="CompletionFlags.More"/>; for a zero-copy send, its notification).
/// A prepare that cannot queue its entry (the submission queue is full and cannot be flushed)
/// throws before anything of the operation reaches the ring.
/// </remarks>
internal unsafe interface IRing : IDisposable
{
    /// <summary>
    /// The optional features this ring uses (the kernel's, less any mask; for epoll, what it
    /// emulates). Code above the ring uses a feature only when it is listed, with a fallback.
    /// </summary>
    RingFeatures Features { get; }

    /// <summary>How the ring was set up, for the loop's start-up log line.</summary>
    string Description { get; }

    /// <summary>Number of submission queue entries.</summary>
    int SubmissionQueueSize { get; }

    /// <summary>Number of completion queue entries.</summary>
    int CompletionQueueSize { get; }

    /// <summary>Operations prepared so far: a running count, so the last prepare's ticket is this value.</summary>
    long Prepared { get; }

    /// <summary>Operations the kernel (or the emulation) has taken from the submission queue: ticket t was submitted when t &lt;= this.</summary>
    long Consumed { get; }

    /// <summary>Binds the ring to the calling thread and enables it. Call once, on the owning thread.</summary>
    void Enable();

    /// <summary>
    /// Submits every prepared operation and waits until at least <paramref name="minComplete"/>
    /// completions are available, a <see cref="Wake"/> arrives, or <paramref name="timeoutMs"/>
    /// elapses (-1: no limit). Returns the number of operations submitted, or a negative errno
    /// for a failure other than interruption.
    /// </summary>
    int SubmitAndWait(int minComplete, int timeoutMs = -1);

    /// <summary>Copies available completions into <paramref name="destination"/> and consumes them; returns how many. Allocates nothing.</summary>
    int DrainCompletions(Span<Completion> destination);

    /// <summary>Wakes the owning thread out of <see cref="SubmitAndWait"/>. Safe from any thread, also after Dispose.</summary>
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

    /// <summary>
    /// Cancels the operation submitted with <paramref name="targetUserData"/> and returns once it is
    /// cancelled (its final completion, -ECANCELED, is then in the completion queue), without
    /// io_uring_enter: it works on a ring whose enter fails. 0, or a negative errno (ENOENT: no
    /// such operation; ETIME: not cancelled within <paramref name="timeoutMs"/>). Only where
    /// <see cref="Features"/> has <see cref="RingFeatures.SyncCancel"/>.
    /// </summary>
    int CancelSync(ulong targetUserData, int timeoutMs);

    // One prepare method per opcode the transport issues, named after it. See Ops/.

    /// <summary>IORING_OP_ACCEPT (5.5), one connection; the peer's address is not asked for.</summary>
    void PrepareAccept(int fd, int flags, ulong userData);

    /// <summary>IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT (5.19): one completion per accepted connection.</summary>
    void PrepareAcceptMultishot(int fd, int flags, ulong userData);

    /// <summary>IORING_OP_RECV (5.6) into <paramref name="buffer"/>.</summary>
    void PrepareRecv(int fd, byte* buffer, int length, ulong userData);

    /// <summary>
    /// IORING_OP_RECV with IOSQE_BUFFER_SELECT (5.19 with a buffer ring): the kernel picks a buffer of
    /// <paramref name="bufferGroup"/>. <paramref name="maxLength"/> &gt; 0 caps the bytes received
    /// (sqe->len); the transport passes 0 (the buffer's size), a test ring may shorten it.
    /// </summary>
    void PrepareRecvBufferSelect(int fd, ushort bufferGroup, ulong userData, int maxLength = 0);

    /// <summary>IORING_OP_RECV with IORING_RECV_MULTISHOT and buffer select (6.0).</summary>
    void PrepareRecvMultishot(int fd, ushort bufferGroup, ulong userData);

    /// <summary>IORING_OP_SEND (5.6), MSG_NOSIGNAL.</summary>
    void PrepareSend(int fd, byte* buffer, int length, ulong userData);

    /// <summary>IORING_OP_SENDMSG (5.3), MSG_NOSIGNAL.</summary>
    void PrepareSendMsg(int fd, MsgHdr* message, ulong userData);

    /// <summary>
    /// IORING_OP_SENDMSG_ZC (6.1) with IORING_SEND_ZC_REPORT_USAGE (6.2): a result completion flagged
    /// <see cref="CompletionFlags.More"/>, then a notification flagged
    /// <see cref="CompletionFlags.Notification"/> once the kernel no longer reads the data pages (the
    /// iovecs and msghdr it has read by the result), its result carrying
    /// <see cref="CompletionFlags.ZeroCopyCopied"/> when the kernel copied anyway.
    /// </summary>
    void PrepareSendMsgZc(int fd, MsgHdr* message, ulong userData);

    /// <summary>IORING_OP_CONNECT (5.5) to the sockaddr at <paramref name="addr"/>.</summary>
    void PrepareConnect(int fd, byte* addr, int addrLen, ulong userData);

    /// <summary>IORING_OP_CLOSE (5.6).</summary>
    void PrepareClose(int fd, ulong userData);

    /// <summary>IORING_OP_ASYNC_CANCEL (5.5) of the operation submitted with <paramref name="targetUserData"/>.</summary>
    void PrepareCancel(ulong targetUserData, ulong userData);

    /// <summary>IORING_OP_ASYNC_CANCEL with IORING_ASYNC_CANCEL_ANY | _ALL (5.19): every request in flight; the result is how many.</summary>
    void PrepareCancelAll(ulong userData);
}
