using System.Collections.Concurrent;

namespace Uring.Transport.Internal;

/// <summary>One queued piece of work, and what to do instead if its loop has stopped (null: run it on the thread pool).</summary>
internal readonly record struct LoopWork(Action<object?> Run, object? State, Action<object?>? Stopped);

/// <summary>
/// Work handed to a loop by other threads (an MPSC queue), and the sleep flag of its wake protocol:
/// a producer enqueues (a full fence), then wakes the loop only if it is asleep or about to sleep;
/// the loop sets the flag (a full fence), then looks for work before it waits. Each side writes,
/// fences, then reads the other's: either the loop sees the item, or the producer sees it asleep.
/// </summary>
internal sealed class WorkQueue
{
    private readonly ConcurrentQueue<LoopWork> _items = new();
    private int _sleeping;

    public int Count => _items.Count;

    public bool IsEmpty => _items.IsEmpty;

    /// <summary>Queues <paramref name="work"/>; true when the loop sleeps and must be woken (the caller wakes it once).</summary>
    public bool Add(in LoopWork work)
    {
        _items.Enqueue(work); // a full fence: pairs with EnterSleep
        return Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1;
    }

    /// <summary>True when the loop sleeps and this caller is the one to wake it (a stop request).</summary>
    public bool ClaimWake() => Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1;

    /// <summary>The loop is about to wait: from now on producers wake it.</summary>
    public void EnterSleep() => Interlocked.Exchange(ref _sleeping, 1);

    public void LeaveSleep() => Volatile.Write(ref _sleeping, 0);

    /// <summary>Runs what is queued now (work that queues more runs next time, after a submit); a throw is reported and the next goes on.</summary>
    public void RunPending(Action<Exception> onError)
    {
        for (int count = _items.Count; count > 0 && _items.TryDequeue(out LoopWork item); count--)
        {
            try
            {
                item.Run(item.State);
            }
            catch (Exception e)
            {
                onError(e);
            }
        }
    }

    /// <summary>The loop has stopped: runs every queued item's failure path (or, for a pipe continuation, the item on the thread pool). Any thread.</summary>
    public void DrainAfterStop(Action<Exception> onError)
    {
        while (_items.TryDequeue(out LoopWork item))
        {
            try
            {
                if (item.Stopped is { } stopped)
                    stopped(item.State);
                else
                    ThreadPool.UnsafeQueueUserWorkItem(item.Run, item.State, preferLocal: false);
            }
            catch (Exception e)
            {
                onError(e);
            }
        }
    }
}
