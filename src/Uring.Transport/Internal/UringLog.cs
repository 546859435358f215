using System.Net;
using Microsoft.Extensions.Logging;

namespace Uring.Transport.Internal;

/// <summary>The transport's log events (category "Uring.Transport"); ids are stable.</summary>
internal static partial class UringLog
{
    public const string Category = "Uring.Transport";

    [LoggerMessage(1, LogLevel.Information, "Uring transport: engine {Engine}, {RingCount} I/O loop(s). {Reason}")]
    public static partial void EngineSelected(ILogger logger, UringEngine engine, int ringCount, string reason);

    [LoggerMessage(2, LogLevel.Debug, "Listening on {EndPoint} with {AcceptorCount} acceptor(s).")]
    public static partial void ListenerBound(ILogger logger, EndPoint endPoint, int acceptorCount);

    [LoggerMessage(3, LogLevel.Warning, "Accepting on {EndPoint} failed with {Error}; retrying in {DelayMs} ms.")]
    public static partial void AcceptFailed(ILogger logger, EndPoint endPoint, string error, int delayMs);

    [LoggerMessage(4, LogLevel.Debug, "I/O loop {LoopIndex} started on {Engine}: {Detail}.")]
    public static partial void LoopStarted(ILogger logger, int loopIndex, UringEngine engine, string detail);

    [LoggerMessage(10, LogLevel.Debug, "Connection {ConnectionId} accepted on loop {LoopIndex} from {RemoteEndPoint}.")]
    public static partial void ConnectionAccepted(ILogger logger, string connectionId, int loopIndex, EndPoint? remoteEndPoint);

    [LoggerMessage(11, LogLevel.Debug, "Connection {ConnectionId} received FIN.")]
    public static partial void ConnectionReadFin(ILogger logger, string connectionId);

    [LoggerMessage(12, LogLevel.Debug, "Connection {ConnectionId} was reset by the peer.")]
    public static partial void ConnectionReset(ILogger logger, string connectionId);

    [LoggerMessage(13, LogLevel.Debug, "Connection {ConnectionId} I/O error: {Error}.")]
    public static partial void ConnectionError(ILogger logger, string connectionId, string error);

    [LoggerMessage(14, LogLevel.Debug, "Connection {ConnectionId} aborted: {Reason}.")]
    public static partial void ConnectionAborted(ILogger logger, string connectionId, string reason);

    [LoggerMessage(15, LogLevel.Debug, "Connection {ConnectionId} closed.")]
    public static partial void ConnectionClosed(ILogger logger, string connectionId);

    [LoggerMessage(16, LogLevel.Error, "Connection {ConnectionId}: a ConnectionClosed callback threw.")]
    public static partial void ConnectionClosedCallbackFailed(ILogger logger, string connectionId, Exception error);

    [LoggerMessage(17, LogLevel.Debug, "Connection {ConnectionId}: the kernel copied a zero-copy send (loopback or a device without it); plain sends from now on.")]
    public static partial void ZeroCopyCopied(ILogger logger, string connectionId);

    [LoggerMessage(20, LogLevel.Error, "I/O loop {LoopIndex}: a completion handler failed; only its connection is affected.")]
    public static partial void HandlerFailed(ILogger logger, int loopIndex, Exception error);

    [LoggerMessage(21, LogLevel.Error, "I/O loop {LoopIndex}: a scheduled work item failed.")]
    public static partial void WorkItemFailed(ILogger logger, int loopIndex, Exception error);

    [LoggerMessage(22, LogLevel.Warning, "I/O loop {LoopIndex} stopped with {Count} connection(s) still open after {Seconds} s.")]
    public static partial void LoopStopTimedOut(ILogger logger, int loopIndex, int count, int seconds);

    [LoggerMessage(23, LogLevel.Error, "I/O loop {LoopIndex}: io_uring_enter failed with {Error}.")]
    public static partial void SubmitFailed(ILogger logger, int loopIndex, string error);

    [LoggerMessage(24, LogLevel.Error, "I/O loop {LoopIndex} failed: {Reason}. Its {Count} connection(s) and listener(s) are aborted; the other loops go on.")]
    public static partial void LoopFaulted(ILogger logger, int loopIndex, string reason, int count, Exception? error);

    [LoggerMessage(25, LogLevel.Warning, "I/O loop {LoopIndex} exits with {Count} handler(s) still open: closing them now.")]
    public static partial void LoopReleasedHandlers(ILogger logger, int loopIndex, int count);

    [LoggerMessage(27, LogLevel.Warning, "I/O loop {LoopIndex}: an operation could not be queued ({Error}); the connection or listener it was for is aborted or retried.")]
    public static partial void PrepareFailed(ILogger logger, int loopIndex, string error);

    [LoggerMessage(8, LogLevel.Warning, "Accepting on {EndPoint} paused: about {Open} of the process's {Limit} file descriptors are open, and {Reserve} are kept for the runtime. Accepting resumes as soon as a connection closes (or within {MaxPauseMs} ms).")]
    public static partial void AcceptPausedForFds(ILogger logger, System.Net.EndPoint endPoint, long open, long limit, long reserve, int maxPauseMs);

    [LoggerMessage(28, LogLevel.Warning, "I/O loop {LoopIndex} failed, and its accept could not be cancelled synchronously ({Error}): until the kernel tears the ring down, a connection may wait for it.")]
    public static partial void SyncCancelFailed(ILogger logger, int loopIndex, string error);

    [LoggerMessage(26, LogLevel.Warning, "I/O loop {LoopIndex} exits with operations still in the kernel: its {Bytes} bytes of receive buffers (and the memory of unfinished sends) are kept, never freed or reused.")]
    public static partial void LoopKeptBuffers(ILogger logger, int loopIndex, long bytes);

    [LoggerMessage(5, LogLevel.Warning, "Listening on {EndPoint}: the SO_REUSEPORT steering program was refused ({Error}); a stranger joining the port's group could be given connections.")]
    public static partial void SteeringRefused(ILogger logger, EndPoint endPoint, string error);

    [LoggerMessage(34, LogLevel.Debug, "Listening on {EndPoint}: new connections go to the loops {Steering}.")]
    public static partial void SteeringAttached(ILogger logger, EndPoint endPoint, string steering);

    [LoggerMessage(6, LogLevel.Warning, "Unbinding {EndPoint}: an acceptor did not stop within {Seconds} s; the listener is closed to Kestrel regardless.")]
    public static partial void UnbindTimedOut(ILogger logger, EndPoint endPoint, double seconds);

    [LoggerMessage(7, LogLevel.Warning, "Listening on {EndPoint}: I/O loop {Failed} failed, loop {Target} accepts for it now.")]
    public static partial void ListenerRehomed(ILogger logger, EndPoint endPoint, int failed, int target);

    [LoggerMessage(30, LogLevel.Debug, "Client I/O loops started: {RingCount} on {Engine} (no server in this process runs loops of that engine).")]
    public static partial void ClientLoopsStarted(ILogger logger, UringEngine engine, int ringCount);

    [LoggerMessage(31, LogLevel.Debug, "Connecting to {EndPoint} failed: {Error}.")]
    public static partial void ConnectFailed(ILogger logger, EndPoint endPoint, string error);

    [LoggerMessage(32, LogLevel.Debug, "Client connection {ConnectionId} connected on loop {LoopIndex} to {RemoteEndPoint}.")]
    public static partial void ClientConnected(ILogger logger, string connectionId, int loopIndex, EndPoint? remoteEndPoint);

    [LoggerMessage(33, LogLevel.Warning, "The connection factory was disposed, but {Count} connection(s) did not close within {Seconds} s.")]
    public static partial void FactoryDisposeTimedOut(ILogger logger, int count, int seconds);
}
