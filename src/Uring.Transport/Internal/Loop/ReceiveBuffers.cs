using Uring.Native;

namespace Uring.Transport.Internal;

/// <summary>
/// A loop's provided receive buffers: one buffer ring (group <see cref="Group"/>) whose memory
/// follows the load, up to ProvidedBufferCount buffers, and the connections that found it empty
/// (ENOBUFS), waiting in arrival order until buffers come back. Loop thread only.
/// </summary>
/// <remarks>
/// Ownership: a buffer is the kernel's from its publication until the completion that names it;
/// the receive operation that got that completion lends it to its connection for the copy and then
/// recycles it (publishes it again). The ring's memory is unregistered and freed only when the loop
/// exits with nothing left in the kernel (<see cref="Release"/>); otherwise it is kept for good.
/// </remarks>
internal sealed class ReceiveBuffers(int count, int size)
{
    public const ushort Group = 0;
    private const int InitialBuffers = 64; // at start; the ring grows by as many when busy

    private readonly Queue<UringConnection> _starved = new();
    private ProvidedBufferRing? _ring;
    private int _inUse;
    private int _taken; // buffers the completions of this batch carried: the kernel had them all out at once

    public int BufferSize => size;

    /// <summary>The buffer ring (tests read its address).</summary>
    public ProvidedBufferRing Ring => _ring!;

    /// <summary>Buffers the kernel filled that are not yet back in the ring. Any thread.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>Bytes of buffer memory provided so far. Any thread.</summary>
    public long AllocatedBytes => _ring?.AllocatedBytes ?? 0;

    /// <summary>Creates the ring with a first chunk of buffers and registers it.</summary>
    /// <exception cref="RingException">The registration failed.</exception>
    public void Register(IRing ring)
    {
        var buffers = new ProvidedBufferRing(Group, count, size, Math.Min(count, InitialBuffers));
        int r = ring.RegisterBufferRing(buffers);
        if (r < 0)
        {
            buffers.Dispose();
            throw new RingException("IORING_REGISTER_PBUF_RING", r);
        }
        _ring = buffers;
    }

    /// <summary>A completion carried a buffer: the kernel took it from the ring.</summary>
    public void Taken()
    {
        Volatile.Write(ref _inUse, _inUse + 1);
        _taken++;
    }

    /// <summary>What a receive put into buffer <paramref name="id"/>.</summary>
    public ReadOnlySpan<byte> Span(ushort id, int length) => _ring!.GetSpan(id, length);

    /// <summary>Gives buffer <paramref name="id"/> back to the ring (the kernel may fill it again).</summary>
    public void Recycle(ushort id)
    {
        _ring!.Recycle(id);
        Volatile.Write(ref _inUse, _inUse - 1);
    }

    /// <summary>
    /// Parks <paramref name="connection"/> until buffers come back (its receive ended with ENOBUFS):
    /// it is resumed, in arrival order, as buffers are recycled, instead of re-arming into an empty
    /// ring on every iteration.
    /// </summary>
    public void WaitFor(UringConnection connection) => _starved.Enqueue(connection);

    /// <summary>
    /// After a batch of completions: the ring grows a chunk when the batch carried three quarters of
    /// its buffers, or a receive found none; then parked connections get another receive, at most
    /// one per free buffer. Free is the kernel's own count where it can tell (6.8); otherwise the
    /// completions' accounting, exact here: every completion posted so far has just been handled
    /// (with DEFER_TASKRUN none is posted between enters), and each one's buffer is recycled or counted.
    /// </summary>
    public void EndOfBatch(IRing ring, Action<ILoopMember, Exception> fault)
    {
        ProvidedBufferRing buffers = _ring!;
        if (buffers.Provided < count && (_taken * 4 >= buffers.Provided * 3 || _starved.Count > 0))
        {
            try
            {
                buffers.Grow();
            }
            catch (OutOfMemoryException)
            {
                // No memory for more (nothing changed): the parked connections wait for buffers to come back.
            }
        }
        _taken = 0;
        if (_starved.Count == 0) return;
        int free = ring.AvailableBuffers(buffers);
        if (free < 0) free = buffers.Provided - _inUse;
        while (free > 0 && _starved.TryDequeue(out UringConnection? connection))
        {
            try
            {
                if (connection.ResumeReceiving()) free--;
            }
            catch (Exception e)
            {
                fault(connection, e);
            }
        }
    }

    /// <summary>
    /// The loop exits: with nothing in the kernel, the ring is unregistered and freed; otherwise a
    /// receive may still write into a buffer, and the memory is kept (returns false).
    /// </summary>
    public bool Release(IRing ring, bool inKernel)
    {
        if (_ring is null) return true;
        if (inKernel) return false;
        if (ring.UnregisterBufferRing(_ring) < 0) return false; // still the kernel's: kept
        _ring.Dispose();
        return true;
    }
}
