using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Uring.Native;

/// <summary>Converts between .NET endpoints and kernel <c>sockaddr</c> bytes.</summary>
internal static unsafe class SockAddr
{
    /// <summary>Large enough for any sockaddr we use (sockaddr_un is 110 bytes, sockaddr_in6 28).</summary>
    public const int MaxSize = 128;

    /// <summary>Writes <paramref name="endPoint"/> as a sockaddr into <paramref name="destination"/>; returns its length.</summary>
    public static int Write(EndPoint endPoint, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        destination.Slice(0, Math.Min(destination.Length, MaxSize)).Clear();
        switch (endPoint)
        {
            case IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetwork:
                BinaryPrimitives.WriteUInt16LittleEndian(destination, Linux.AF_INET);
                BinaryPrimitives.WriteUInt16BigEndian(destination.Slice(2), (ushort)ip.Port);
                ip.Address.TryWriteBytes(destination.Slice(4, 4), out _);
                return 16;
            case IPEndPoint ip6 when ip6.AddressFamily == AddressFamily.InterNetworkV6:
                BinaryPrimitives.WriteUInt16LittleEndian(destination, Linux.AF_INET6);
                BinaryPrimitives.WriteUInt16BigEndian(destination.Slice(2), (ushort)ip6.Port);
                ip6.Address.TryWriteBytes(destination.Slice(8, 16), out _);
                BinaryPrimitives.WriteUInt32LittleEndian(destination.Slice(24), (uint)ip6.Address.ScopeId);
                return 28;
            case UnixDomainSocketEndPoint unix:
                string path = unix.ToString();
                int n = Encoding.UTF8.GetBytes(path, destination.Slice(2, 107));
                BinaryPrimitives.WriteUInt16LittleEndian(destination, Linux.AF_UNIX);
                if (path.Length > 0 && path[0] == '\0')
                    return 2 + n; // abstract: length counts exactly, no terminator
                return 2 + n + 1;
            default:
                throw new NotSupportedException($"Endpoint type {endPoint.GetType().Name} is not supported.");
        }
    }

    /// <summary>Reads a sockaddr; null when the family is unknown or the length is empty.</summary>
    public static EndPoint? Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < 2) return null;
        int family = BinaryPrimitives.ReadUInt16LittleEndian(source);
        switch (family)
        {
            case Linux.AF_INET when source.Length >= 16:
                return new IPEndPoint(new IPAddress(source.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(source.Slice(2)));
            case Linux.AF_INET6 when source.Length >= 28:
                var address = new IPAddress(source.Slice(8, 16), BinaryPrimitives.ReadUInt32LittleEndian(source.Slice(24)));
                return new IPEndPoint(address, BinaryPrimitives.ReadUInt16BigEndian(source.Slice(2)));
            case Linux.AF_UNIX:
                var path = source.Slice(2);
                if (path.Length == 0) return null; // unnamed (a client socket that never bound)
                if (path[0] != 0)
                {
                    int end = path.IndexOf((byte)0);
                    if (end >= 0) path = path.Slice(0, end);
                }
                return path.Length == 0 ? null : new UnixDomainSocketEndPoint(Encoding.UTF8.GetString(path));
            default:
                return null;
        }
    }

    /// <summary>The address family (AF_*) for an endpoint.</summary>
    public static int FamilyOf(EndPoint endPoint) => endPoint switch
    {
        IPEndPoint { AddressFamily: AddressFamily.InterNetwork } => Linux.AF_INET,
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } => Linux.AF_INET6,
        UnixDomainSocketEndPoint => Linux.AF_UNIX,
        _ => throw new NotSupportedException($"Endpoint type {endPoint.GetType().Name} is not supported."),
    };
}
