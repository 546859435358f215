using System.Net;
using System.Net.Sockets;
using Uring.Transport.Internal;

namespace Uring.Transport.Client;

/// <summary>Resolves an endpoint and connects to it, address by address, as <see cref="Socket.ConnectAsync(EndPoint)"/> does.</summary>
internal static class Connector
{
    public static bool CanConnect(EndPoint endPoint) => endPoint is IPEndPoint or DnsEndPoint or UnixDomainSocketEndPoint;

    /// <summary>
    /// Connects on <paramref name="group"/>'s loops. A <see cref="DnsEndPoint"/> is resolved and its
    /// addresses tried in turn; when all fail, the last failure is thrown.
    /// </summary>
    public static async Task<UringConnection> ConnectAsync(IoLoopGroup group, EndPoint endPoint, UringTransportOptions options, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        switch (endPoint)
        {
            case IPEndPoint or UnixDomainSocketEndPoint:
                return await ConnectOperation.StartAsync(group, endPoint, options, cancellationToken).ConfigureAwait(false);
            case DnsEndPoint dns:
                IPAddress[] addresses = await (group.Environment.ResolveHost ?? Dns.GetHostAddressesAsync)(dns.Host, dns.AddressFamily, cancellationToken).ConfigureAwait(false);
                SocketException? last = null;
                foreach (IPAddress address in addresses)
                {
                    try
                    {
                        return await ConnectOperation.StartAsync(group, new IPEndPoint(address, dns.Port), options, cancellationToken).ConfigureAwait(false);
                    }
                    catch (SocketException e)
                    {
                        last = e;
                    }
                }
                throw last ?? new SocketException((int)SocketError.HostNotFound,
                    $"'{dns.Host}' has no {(dns.AddressFamily == AddressFamily.Unspecified ? "" : dns.AddressFamily + " ")}address to connect to.");
            default:
                throw new NotSupportedException(
                    $"The Uring transport cannot connect to a {endPoint.GetType().Name}; use an IPEndPoint, DnsEndPoint or UnixDomainSocketEndPoint.");
        }
    }
}
