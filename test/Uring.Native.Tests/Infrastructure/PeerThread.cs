using System.Runtime.ExceptionServices;

namespace Uring.Native.Tests;

/// <summary>
/// The other side of a test on its own thread, so the ring thread stays the only one driving the ring.
/// <see cref="Join"/> rethrows what the peer threw.
/// </summary>
internal sealed class PeerThread
{
    private readonly Thread _thread;
    private Exception? _error;

    private PeerThread(string name, Action body)
    {
        _thread = new Thread(() =>
        {
            try { body(); }
            catch (Exception e) { _error = e; }
        }) { IsBackground = true, Name = name };
    }

    public static PeerThread Start(string name, Action body)
    {
        var peer = new PeerThread(name, body);
        peer._thread.Start();
        return peer;
    }

    public bool IsCompleted => !_thread.IsAlive;

    public void Join(int timeoutMs = RingDriver.DefaultTimeoutMs)
    {
        Assert.True(_thread.Join(timeoutMs), $"Peer thread '{_thread.Name}' did not finish within {timeoutMs} ms.");
        if (_error is not null) ExceptionDispatchInfo.Throw(_error);
    }
}
