namespace Uring.Transport.Tests.Infrastructure;

/// <summary>What the other end of a connection observes.</summary>
internal static class Peer
{
    /// <summary>Whether <paramref name="socket"/> reads the end of the stream (FIN) or a reset within <paramref name="timeout"/> (data before it is skipped).</summary>
    public static async Task<bool> SeesTheEndAsync(Socket socket, TimeSpan timeout)
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token) > 0) { }
            return true;
        }
        catch (SocketException)
        {
            return true; // reset
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
