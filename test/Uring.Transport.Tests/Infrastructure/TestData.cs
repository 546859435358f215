namespace Uring.Transport.Tests.Infrastructure;

internal static class TestData
{
    /// <summary>Bytes from a seeded generator, so both ends of a test can rebuild them.</summary>
    public static byte[] Random(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexString(SHA256.HashData(bytes));

    /// <summary>Writes <paramref name="text"/> with a Content-Length, so raw-socket clients can frame it.</summary>
    public static Task WriteText(HttpContext context, string text)
    {
        byte[] body = Encoding.UTF8.GetBytes(text);
        context.Response.ContentType = "text/plain";
        context.Response.ContentLength = body.Length;
        return context.Response.Body.WriteAsync(body).AsTask();
    }

    /// <summary>GET /whoami answers the request's protocol and scheme, e.g. "HTTP/2 https".</summary>
    public static void MapWhoAmI(WebApplication app) =>
        app.MapGet("/whoami", context => WriteText(context, $"{context.Request.Protocol} {context.Request.Scheme}"));

    /// <summary>GET /loop answers the index of the I/O loop serving the connection.</summary>
    public static void MapLoopIndex(WebApplication app) =>
        app.MapGet("/loop", context => WriteText(context,
            context.Features.Get<IUringConnectionFeature>()!.LoopIndex.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>The app most tests need: GET /plaintext answers "Hello, World!".</summary>
    public static void MapPlaintext(WebApplication app) =>
        app.MapGet("/plaintext", context => WriteText(context, "Hello, World!"));
}
