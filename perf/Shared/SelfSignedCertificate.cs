using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Uring.Perf;

/// <summary>
/// A self-signed TLS server certificate for localhost / 127.0.0.1, made in code: the perf apps'
/// https endpoints and the tests' TLS servers need no certificate on disk. Linked where needed.
/// </summary>
internal static class SelfSignedCertificate
{
    /// <summary>A new RSA-2048 certificate, valid from a day ago for a week.</summary>
    public static X509Certificate2 Create()
    {
        using var rsa = RSA.Create(2048);
        return SelfSign(new CertificateRequest("CN=localhost", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
            X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment);
    }

    /// <summary>
    /// A new ECDSA P-256 certificate, valid from a day ago for a week: the kind most sites serve,
    /// whose handshakes cost the server one ECDSA signature each (the TLS benchmarks' certificate).
    /// </summary>
    public static X509Certificate2 CreateEcdsa()
    {
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        // An ECDSA key only signs: no key encipherment.
        return SelfSign(new CertificateRequest("CN=localhost", ecdsa, HashAlgorithmName.SHA256), X509KeyUsageFlags.DigitalSignature);
    }

    private static X509Certificate2 SelfSign(CertificateRequest request, X509KeyUsageFlags keyUsage)
    {
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(keyUsage, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1", "Server Authentication")], critical: false));

        using X509Certificate2 created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        // Round-trip through PFX so the private key is a persisted, usable one for SslStream.
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), password: null);
    }
}
