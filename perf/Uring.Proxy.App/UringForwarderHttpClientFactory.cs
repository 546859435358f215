using System.Net.Http;
using Uring.Transport;
using Yarp.ReverseProxy.Forwarder;

namespace Uring.Proxy.App;

/// <summary>
/// YARP's forwarder client with its connections on the uring transport: YARP's own handler
/// settings (no proxy, no redirects, no cookies, multiple HTTP/2 connections, its timeouts), and the
/// handler's ConnectCallback set by <c>UseUringTransport</c>. With a Kestrel server on the same
/// engine in this process, the outbound connections run on that server's I/O loops.
/// </summary>
public sealed class UringForwarderHttpClientFactory(UringEngine engine) : ForwarderHttpClientFactory
{
    private long _connections;

    /// <summary>The engine the outbound connections ask for.</summary>
    public UringEngine Engine { get; } = engine;

    /// <summary>Outbound connections opened so far (through the transport): shows that the proxy's client side is on it.</summary>
    public long Connections => Interlocked.Read(ref _connections);

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        handler.UseUringTransport(o => o.Engine = Engine);
        var connect = handler.ConnectCallback!;
        handler.ConnectCallback = async (connectContext, cancellationToken) =>
        {
            Stream stream = await connect(connectContext, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _connections);
            return stream;
        };
    }
}
