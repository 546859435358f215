using Microsoft.Extensions.Logging;

namespace Uring.Transport.Internal;

/// <summary>
/// What lives on a loop and owns operations: a connection, an acceptor, a connect. The loop tells
/// it when handling its work failed, when the loop stops, and when the loop has exited.
/// </summary>
internal interface ILoopMember
{
    /// <summary>Its place in the loop's <see cref="LoopMembers"/> (kept by that list).</summary>
    int MemberIndex { get; set; }

    /// <summary>Handling one of its completions threw, or one of its operations could not be queued: end its work (the loop goes on).</summary>
    void OnFault(Exception error);

    /// <summary>The loop is stopping: cancel or abort what is in flight; completions still arrive.</summary>
    void OnLoopStopping();

    /// <summary>
    /// The loop is exiting with this member still on it: no completion will come, and its operations
    /// have been abandoned (what the kernel may touch is retired). Release what is its own
    /// synchronously (an fd) and complete every waiter, failing it with <paramref name="reason"/>.
    /// </summary>
    void OnLoopStopped(string reason);
}

/// <summary>
/// A loop's members, and the calls owed to them after the current step: the input flushes of a
/// batch of completions, and the faults of members whose operations could not be queued (faulted
/// after the step that failed, not inside it). A member whose call throws is faulted; whatever its
/// fault path throws is logged, never the loop's end. Loop thread only (counts: any thread).
/// </summary>
internal sealed class LoopMembers(ILogger logger, int loopIndex)
{
    private readonly List<UringConnection> _dirtyInputs = new();
    private readonly List<(ILoopMember? Member, Exception Error)> _faults = new();
    private ILoopMember?[] _members = new ILoopMember?[64];
    private int _count;
    private int _connections;

    public int Count => _count;

    /// <summary>Open connections (the connections instrument sums them). Any thread.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public void Add(ILoopMember member)
    {
        if (_count == _members.Length) Array.Resize(ref _members, _count * 2);
        member.MemberIndex = _count;
        _members[_count++] = member;
        if (member is UringConnection) Interlocked.Increment(ref _connections);
    }

    public void Remove(ILoopMember member)
    {
        int index = member.MemberIndex;
        if ((uint)index >= (uint)_count || _members[index] != member) return;
        ILoopMember last = _members[--_count]!;
        _members[index] = last;
        last.MemberIndex = index;
        _members[_count] = null;
        member.MemberIndex = -1;
        if (member is UringConnection) Interlocked.Decrement(ref _connections);
    }

    /// <summary>Calls <paramref name="action"/> on each member there now (members may leave meanwhile).</summary>
    public void ForEach(Action<ILoopMember> action)
    {
        foreach (ILoopMember member in _members.AsSpan(0, _count).ToArray()!)
        {
            try
            {
                action(member);
            }
            catch (Exception e)
            {
                UringLog.HandlerFailed(logger, loopIndex, e);
            }
        }
    }

    /// <summary>Forgets every member (the loop has exited and told them).</summary>
    public void Clear()
    {
        Array.Clear(_members, 0, _count);
        _count = 0;
        Interlocked.Exchange(ref _connections, 0);
    }

    /// <summary>A call of <paramref name="member"/>'s threw: logged, and it ends its work.</summary>
    public void Fault(ILoopMember? member, Exception error)
    {
        UringLog.HandlerFailed(logger, loopIndex, error);
        Notify(member, error);
    }

    // The member ends its work; whatever its fault path throws is logged.
    private void Notify(ILoopMember? member, Exception error)
    {
        try
        {
            member?.OnFault(error);
        }
        catch (Exception inner)
        {
            UringLog.HandlerFailed(logger, loopIndex, inner);
        }
    }

    /// <summary>An operation of <paramref name="member"/>'s could not be queued (nothing of it reached the ring): logged, faulted after this step.</summary>
    public void PrepareFailed(ILoopMember? member, Exception error)
    {
        UringLog.PrepareFailed(logger, loopIndex, error.Message);
        _faults.Add((member, error));
    }

    /// <summary>Queues a connection whose input pipe must be flushed once this batch of completions is handled.</summary>
    public void MarkInputDirty(UringConnection connection) => _dirtyInputs.Add(connection);

    /// <summary>The calls owed after a step: input flushes, then the faults of failed prepares (a fault path that fails to queue is faulted next step).</summary>
    public void RunDeferred()
    {
        // Index loops: flushing may mark more connections dirty; a fault may fail another prepare.
        for (int i = 0; i < _dirtyInputs.Count; i++)
        {
            UringConnection connection = _dirtyInputs[i];
            try
            {
                connection.FlushInput();
            }
            catch (Exception e)
            {
                Fault(connection, e);
            }
        }
        _dirtyInputs.Clear();
        int faults = _faults.Count;
        for (int i = 0; i < faults; i++) Notify(_faults[i].Member, _faults[i].Error); // logged when the prepare failed
        _faults.RemoveRange(0, faults);
    }

    /// <summary>How many members match (diagnostics and tests: a racy snapshot off the loop thread).</summary>
    internal int CountWhere(Func<ILoopMember, bool> predicate)
    {
        int count = 0;
        foreach (ILoopMember? member in _members)
            if (member is not null && predicate(member)) count++;
        return count;
    }
}
