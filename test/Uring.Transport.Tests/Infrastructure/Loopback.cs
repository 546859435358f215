namespace Uring.Transport.Tests.Infrastructure;

/// <summary>What this machine's loopback offers.</summary>
internal static class Loopback
{
    /// <summary>True when ::1 exists here (containers often run without IPv6).</summary>
    public static bool HasIPv6 => Socket.OSSupportsIPv6 && CanBind(IPAddress.IPv6Loopback);

    public static bool CanBind(IPAddress address)
    {
        try
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
