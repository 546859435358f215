using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace Uring.Transport.Client;

/// <summary>
/// A <see cref="Stream"/> over a connection's pipes, for <c>SocketsHttpHandler.ConnectCallback</c>:
/// reads come from <c>Transport.Input</c>, writes go to <c>Transport.Output</c> and are flushed.
/// Disposing closes the connection gracefully (pending output is sent, then FIN) and then releases
/// <c>owned</c> (the loops' lease).
/// </summary>
/// <remarks>
/// Like a <c>NetworkStream</c>, it allows one read and one write at a time, concurrently, and a
/// dispose from any thread: the dispose cancels a pending read or flush and waits for it to return
/// before the pipes are completed, since pipe ends are not safe to complete under a running call.
/// </remarks>
internal sealed class ConnectionStream : Stream
{
    private readonly ConnectionContext _connection;
    private readonly IAsyncDisposable? _owned;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly TaskCompletionSource _operationsDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lazy<Task> _dispose;
    private int _operations;
    private int _disposing;

    public ConnectionStream(ConnectionContext connection, IAsyncDisposable? owned)
    {
        _connection = connection;
        _owned = owned;
        _input = connection.Transport.Input;
        _output = connection.Transport.Output;
        _dispose = new Lazy<Task>(DisposeCoreAsync);
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    // ---- read ----------------------------------------------------------------------------------

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        Enter();
        try
        {
            while (true)
            {
                ReadResult result = await _input.ReadAsync(cancellationToken).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = result.Buffer;
                SequencePosition consumed = buffer.Start;
                try
                {
                    if (result.IsCanceled) throw Canceled();
                    // A zero-byte read (SslStream, HttpClient's idle check) waits for data and takes none.
                    if (!buffer.IsEmpty)
                    {
                        int n = (int)Math.Min(buffer.Length, destination.Length);
                        buffer.Slice(0, n).CopyTo(destination.Span);
                        consumed = buffer.GetPosition(n);
                        return n;
                    }
                    if (result.IsCompleted) return 0;
                }
                finally
                {
                    _input.AdvanceTo(consumed);
                }
            }
        }
        catch (ConnectionAbortedException e)
        {
            throw Aborted(e);
        }
        finally
        {
            Exit();
        }
    }

    // ---- write ---------------------------------------------------------------------------------

    public override void Write(byte[] buffer, int offset, int count) =>
        WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) =>
        FlushCoreAsync(source, cancellationToken);

    public override void Flush() => FlushAsync().GetAwaiter().GetResult();

    public override Task FlushAsync(CancellationToken cancellationToken) => FlushCoreAsync(default, cancellationToken).AsTask();

    private async ValueTask FlushCoreAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken)
    {
        Enter();
        try
        {
            FlushResult result = source.IsEmpty
                ? await _output.FlushAsync(cancellationToken).ConfigureAwait(false)
                : await _output.WriteAsync(source, cancellationToken).ConfigureAwait(false);
            if (result.IsCanceled) throw Canceled();
            if (result.IsCompleted && !source.IsEmpty)
                throw new IOException("The connection is closed: the data could not be sent.");
        }
        catch (ConnectionAbortedException e)
        {
            throw Aborted(e);
        }
        finally
        {
            Exit();
        }
    }

    // ---- dispose -------------------------------------------------------------------------------

    private void Enter()
    {
        Interlocked.Increment(ref _operations);
        if (Volatile.Read(ref _disposing) != 0)
        {
            Exit();
            throw new ObjectDisposedException(nameof(ConnectionStream));
        }
    }

    private void Exit()
    {
        if (Interlocked.Decrement(ref _operations) == 0 && Volatile.Read(ref _disposing) != 0)
            _operationsDone.TrySetResult();
    }

    private Exception Canceled() => Volatile.Read(ref _disposing) != 0
        ? new ObjectDisposedException(nameof(ConnectionStream))
        : new OperationCanceledException("The pending operation was canceled.");

    // An abort is an I/O failure to the caller, not a cancellation of its own: HttpClient would
    // otherwise report it as a timeout.
    private static IOException Aborted(ConnectionAbortedException e) => new(e.Message, e);

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        // Stream.Dispose is synchronous (HttpClient calls it): the close finishes in the background.
        _dispose.Value.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public override ValueTask DisposeAsync() => new(_dispose.Value);

    private async Task DisposeCoreAsync()
    {
        Interlocked.Exchange(ref _disposing, 1);
        try
        {
            _input.CancelPendingRead();
            _output.CancelPendingFlush();
            if (Volatile.Read(ref _operations) == 0) _operationsDone.TrySetResult();
            await _operationsDone.Task.ConfigureAwait(false);
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            if (_owned is not null) await _owned.DisposeAsync().ConfigureAwait(false);
        }
    }
}
