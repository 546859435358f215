using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using Uring.Native;

namespace Uring.Transport.Internal;

// Sending: one loop drains the output pipe with one send in flight at a time; the memory it points
// into (pipe segments, a SendSlot's iovecs, zero-copy leases) is released only at the completion
// (or the zero-copy notification) that gives it back.
internal sealed partial class UringConnection
{
    private enum SendOp : byte
    {
        None,
        InFlight,
        Cancelling,  // in flight, and its cancel was asked for
    }

    // Loop thread only.
    private SendOp _send;
    private bool _outputEnded;            // the send loop has finished
    private SendSlot? _sendSlot;          // lent by the loop while a send is in flight
    private ReadOnlySequence<byte> _sending; // what the send in flight points into
    private ulong _sendToken;             // the send in flight's user_data (for its cancel)
    // Zero-copy sends whose notification has not come, by tag: each slot holds leases on the blocks
    // the kernel may still read, released only at that notification (the pipe may have given the
    // blocks back long before: they return to the pool then). When the loop stops with some still
    // unnotified (OnLoopStopped), their leases are never released: those blocks never return.
    private SendSlot?[]? _zeroCopy;
    private int _zeroCopyPending;
    private bool _zeroCopyOff;            // the kernel copied anyway (loopback): plain sends from now on
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

    private unsafe ValueTask<int> SendAsync(in ReadOnlySequence<byte> buffer)
    {
        if (_close == CloseState.Dead) return new ValueTask<int>(-Errno.ECANCELED); // no ring any more

        SendSlot slot = _loop.SendSlots.Rent();
        int count = slot.Fill(buffer);
        if (TryZeroCopy(slot, buffer, out int tag))
        {
            _sendToken = UserData.Encode(OpKind.SendZc, _slot, _generation, tag);
            _loop.Ring.PrepareSendMsgZc(_fd, slot.Msg, 0, _sendToken, reportUsage: true);
        }
        else
        {
            _sendToken = Token(OpKind.Send);
            if (count == 1)
                _loop.Ring.PrepareSend(_fd, (byte*)slot.Iov[0].Base, (int)slot.Iov[0].Length, 0, _sendToken);
            else
                _loop.Ring.PrepareSendMsg(_fd, slot.Msg, 0, _sendToken);
            _sendSlot = slot;
        }
        _sending = buffer;
        _send = SendOp.InFlight;
        _sendCore.Reset();
        return new ValueTask<int>(this, _sendCore.Version);
    }

    // A large send goes zero-copy (IORING_OP_SENDMSG_ZC, 6.1) while the kernel has not reported
    // copying it anyway: on loopback it does, and the connection then stays with plain sends; on a
    // real NIC the pages go to the device without a copy. The slot (iovecs, leases) is the
    // notification's to give back.
    private bool TryZeroCopy(SendSlot slot, in ReadOnlySequence<byte> buffer, out int tag)
    {
        tag = 0;
        if (_zeroCopyOff || slot.Bytes < _loop.ZeroCopyThreshold) return false;
        _zeroCopy ??= new SendSlot?[16];
        while (tag < _zeroCopy.Length && _zeroCopy[tag] is not null) tag++;
        if (tag == _zeroCopy.Length || !slot.TryLease(buffer)) return false;
        _zeroCopy[tag] = slot;
        _zeroCopyPending++;
        return true;
    }

    private void OnSendZeroCopy(in Completion c)
    {
        int tag = UserData.Tag(c.UserData);
        if ((c.Flags & CompletionFlags.Notification) != 0)
        {
            ZeroCopyDone(tag, copied: (unchecked((uint)c.Result) & CompletionFlags.ZeroCopyCopied) != 0);
            TryClose();
            return;
        }
        if (!c.HasMore) ZeroCopyDone(tag, copied: false); // it failed before it began: no notification comes
        OnSend(c.Result);
    }

    private void ZeroCopyDone(int tag, bool copied)
    {
        if (_zeroCopy?[tag] is not { } slot) return;
        _zeroCopy[tag] = null;
        _zeroCopyPending--;
        slot.ReleaseLeases();
        _loop.SendSlots.Return(slot);
        if (copied && !_zeroCopyOff && !_loop.KeepZeroCopy)
        {
            _zeroCopyOff = true;
            UringLog.ZeroCopyCopied(_loop.Logger, ConnectionId);
        }
    }

    private void OnSend(int result)
    {
        _send = SendOp.None;
        _sending = default;
        if (_sendSlot is { } slot)
        {
            _sendSlot = null;
            _loop.SendSlots.Return(slot); // the kernel is done with the iovecs and the segments
        }
        _sendCore.SetResult(result); // the send loop continues inline, on this thread
        TryClose();
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
