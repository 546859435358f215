using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>A self-signed server certificate for localhost / 127.0.0.1, made once per test run.</summary>
internal static class TestCertificate
{
    private static readonly Lazy<X509Certificate2> s_certificate = new(Uring.Perf.SelfSignedCertificate.Create);

    public static X509Certificate2 Instance => s_certificate.Value;

    /// <summary>Client-side validation that trusts exactly this certificate and nothing else.</summary>
    public static bool IsThisCertificate(X509Certificate? presented) =>
        presented is not null && presented.GetCertHashString() == Instance.GetCertHashString();

    /// <summary>Makes a handler trust this certificate (and nothing else).</summary>
    public static void Trust(SocketsHttpHandler handler) =>
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => IsThisCertificate(certificate);

    /// <summary>A server setup listening with TLS on this certificate, speaking <paramref name="protocols"/>.</summary>
    public static ServerSetup Https(HttpProtocols protocols) => new()
    {
        Listen = lo =>
        {
            lo.Protocols = protocols;
            lo.UseHttps(Instance);
        },
    };
}
