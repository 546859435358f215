using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

// Sending: one loop drains the output pipe with one send in flight at a time. Each send is a
// SendOperation, which owns what the kernel reads (the segments' pins, the iovecs, a zero-copy
// send's leases) until its final completion or notification.
internal sealed partial class UringConnection
{
    private enum SendState : byte
    {
        None,
        InFlight,    // a send's result has not come
        Cancelling,  // and its cancel is queued
    }

    // Loop thread only.
    private SendState _send;
    private ulong _sendUserData;          // the send in flight (for its cancel)
    private bool _outputEnded;            // the send loop has finished
    private bool _zeroCopyOff;            // the kernel copied a zero-copy send anyway (loopback): plain sends from now on
    private ManualResetValueTaskSourceCore<int> _sendCore;

    private async Task SendLoopAsync()
    {
        Exception? error = null; // unexpected failures only: a peer that went away is not one
        PipeReader reader = _output.Reader;
        try
        {
            while (true)
            {
                ReadResult result = await reader.ReadAsync();
                if (result.IsCanceled || _close == CloseState.Dead) break;

                ReadOnlySequence<byte> buffer = result.Buffer;
                while (!buffer.IsEmpty)
                {
                    int sent = await SendAsync(buffer);
                    // On these two ends the read is not advanced: Complete (finally) releases it all,
                    // so a flush waiting on backpressure wakes seeing IsCompleted. Advancing first
                    // could wake it as if the output had drained.
                    if (sent < 0)
                    {
                        error = OnSendFailed(sent);
                        return;
                    }
                    buffer = buffer.Slice(sent);
                    if (_close != CloseState.Open) return; // closing for a reason other than our own end of output: send nothing more
                }
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted) break;
            }
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            // As Kestrel's Sockets transport: the output completes with an error only when it was
            // unexpected; resets and aborts reach the application through the input.
            reader.Complete(error);
            WriteEnded(error);
        }
    }

    // Logged and counted (uring.loop.connections.failed) alike for receives and sends.
    private void OnPeerReset()
    {
        UringLog.ConnectionReset(_loop.Logger, ConnectionId);
        Interlocked.Increment(ref _loop.Counters.Resets);
    }

    private void OnUnexpectedErrno(int result)
    {
        UringLog.ConnectionError(_loop.Logger, ConnectionId, Errno.Describe(result));
        Interlocked.Increment(ref _loop.Counters.Errors);
    }

    /// <summary>Classifies a failed send: null for a reset peer or our own cancel, else the unexpected error.</summary>
    private Exception? OnSendFailed(int result)
    {
        switch (-result)
        {
            case Errno.ECANCELED:
                return null;
            case Errno.ECONNRESET:
            case Errno.EPIPE:
            case Errno.ECONNABORTED:
            case Errno.ENOTCONN:
                OnPeerReset();
                _shutdownReason ??= new ConnectionResetException($"Send failed: {Errno.Describe(result)}.", ErrnoException(result));
                return null;
            default:
                OnUnexpectedErrno(result);
                return ErrnoException(result);
        }
    }

    // A large send goes zero-copy (IORING_OP_SENDMSG_ZC) while the kernel has not reported copying
    // it anyway: on loopback it does, and the connection then stays with plain sends; on a real NIC
    // the pages go to the device without a copy.
    private ValueTask<int> SendAsync(in ReadOnlySequence<byte> buffer)
    {
        if (_close == CloseState.Dead) return new ValueTask<int>(-Errno.ECANCELED); // no ring any more
        SendOperation send = _loop.Sends.Rent();
        // Not queued (the ring's queue was full and could not be flushed): an unexpected error; the fault path aborts.
        if (!send.Start(this, _socket.Fd, buffer, _zeroCopyOff ? long.MaxValue : _loop.ZeroCopyThreshold)) return new ValueTask<int>(-Errno.EBUSY);
        _sendUserData = send.UserData;
        _send = SendState.InFlight;
        _sendCore.Reset();
        return new ValueTask<int>(this, _sendCore.Version);
    }

    /// <summary>A send's result (for a zero-copy send, its first completion; its memory may still be the kernel's).</summary>
    public void OnSent(int result)
    {
        _send = SendState.None;
        _sendCore.SetResult(result); // the send loop continues inline, on this thread
        TryClose();
    }

    /// <summary>A zero-copy send's notification: whether the kernel copied it anyway.</summary>
    public void OnZeroCopyNotified(bool copied)
    {
        if (!copied || _zeroCopyOff || _loop.Environment.KeepZeroCopy) return;
        _zeroCopyOff = true;
        UringLog.ZeroCopyCopied(_loop.Logger, ConnectionId);
    }

    int IValueTaskSource<int>.GetResult(short token) => _sendCore.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _sendCore.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _sendCore.OnCompleted(continuation, state, token, flags);

    private void WriteEnded(Exception? error)
    {
        _outputEnded = true;
        if (_close == CloseState.Dead) return;
        if (error is not null) _shutdownReason ??= error;
        if (_shutdownReason is not null && _close == CloseState.Open)
        {
            // Receiving on a connection that can no longer send serves nobody.
            _close = CloseState.Closing;
            CancelRecv();
        }
        BeginClose();
    }
}
