using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Uring.Transport.Tests.Infrastructure;

/// <summary>A self-signed server certificate for localhost / 127.0.0.1, made once per test run.</summary>
internal static class TestCertificate
{
    private static readonly Lazy<X509Certificate2> s_certificate = new(Create);

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

    private static X509Certificate2 Create()
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1", "Server Authentication")], critical: false));

        using X509Certificate2 created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        // Round-trip through PFX so the private key is a persisted, usable one for SslStream.
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), password: null);
    }
}
