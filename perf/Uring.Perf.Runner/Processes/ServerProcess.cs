using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Uring.Perf.Runner.Processes;

/// <summary>
/// One contender's server process (Uring.Perf.App, or the proxy or gRPC app of an app scenario), pinned with taskset (unless the pass pins nothing),
/// alive across all of its runs (the idle scenario starts fresh ones). It starts through sh, which
/// raises its open-file limit to <see cref="FileLimit.Wanted"/> and execs it. Its output goes to a
/// log file in the results folder.
/// </summary>
internal sealed class ServerProcess : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly StreamWriter _log;
    private readonly object _gate = new();
    private Process _process = null!; // set right after construction, before any line can arrive
    private int _pid;
    private bool _listening;
    private bool _disposed;

    private ServerProcess(ServerLaunch launch, StreamWriter log)
    {
        Launch = launch;
        _log = log;
    }

    /// <summary>How it was started.</summary>
    public ServerLaunch Launch { get; }

    public Contender Contender => Launch.Contender;

    public int Port => Launch.Port;

    /// <summary>The HTTP/2-only cleartext port (--h2c-endpoint), or null.</summary>
    public int? H2Port => Launch.H2Port;

    /// <summary>The HTTP/1.1-over-TLS port (the TLS scenarios), or null.</summary>
    public int? TlsPort => Launch.TlsPort;

    /// <summary>The app's own PID, from its "PID n" line.</summary>
    public int Pid => _pid;

    /// <summary>The transport's start-up line naming the engine it chose and why (uring contenders).</summary>
    public string? EngineLine { get; private set; }

    /// <summary>"IoUring" or "Epoll", from <see cref="EngineLine"/>.</summary>
    public string? Engine { get; private set; }

    public bool IsAlive
    {
        get
        {
            try
            {
                return !_process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }
    }

    /// <summary>A URL on the server: its HTTP/1.1 endpoint, its h2c one (<paramref name="h2"/>) or its https one (<paramref name="tls"/>) where it has them.</summary>
    public string Url(string path, bool h2 = false, bool tls = false) => (h2, tls) switch
    {
        (true, _) when H2Port is int p => ServerLaunch.Url("http", p),
        (_, true) when TlsPort is int p => ServerLaunch.Url("https", p),
        _ => ServerLaunch.Url("http", Port),
    } + path;

    /// <summary>The soft open-file limit the app runs with (from /proc/PID/limits), once it is listening.</summary>
    public long? MaxOpenFiles { get; private set; }

    /// <summary>
    /// Starts the app as <paramref name="launch"/> says and waits until it prints "listening on" and answers <paramref name="probe"/>
    /// (default: GET /plaintext, <see cref="Probe"/>; it gets the server's base URL and returns null when the answer is right).
    /// On failure returns null and the reason; the process is stopped.
    /// </summary>
    public static ServerProcess? Start(ServerLaunch launch, string logPath, out string? error, Func<string, string?>? probe = null)
    {
        var environment = new Dictionary<string, string?>
        {
            // The contender names the engine; an operator override would silently change it.
            ["URING_TRANSPORT_ENGINE"] = null,
            ["ASPNETCORE_URLS"] = null,
            ["DOTNET_URLS"] = null,
        };
        foreach (string key in Environment.GetEnvironmentVariables().Keys.Cast<string>())
        {
            if (key.StartsWith("Kestrel__", StringComparison.OrdinalIgnoreCase) || key.StartsWith("ASPNETCORE_Kestrel__", StringComparison.OrdinalIgnoreCase))
            {
                environment[key] = null;
            }
        }
        if (launch.H2Port is int h2)
        {
            // Endpoints from configuration replace --urls, so every endpoint is named here.
            environment["Kestrel__Endpoints__http1__Url"] = launch.HttpUrl;
            environment["Kestrel__Endpoints__h2c__Url"] = ServerLaunch.Url("http", h2);
            environment["Kestrel__Endpoints__h2c__Protocols"] = "Http2";
            if (launch.TlsUrl is string tls)
            {
                environment["Kestrel__Endpoints__https__Url"] = tls;
            }
        }

        var log = new StreamWriter(logPath, append: false) { AutoFlush = true };
        var command = launch.Command;
        log.WriteLine($"# {launch.Contender.Name}: {string.Join(' ', command.Skip(FileLimit.ShellPrefix.Count))} (under sh: ulimit -n {FileLimit.Wanted}, then exec)");
        var server = new ServerProcess(launch, log);
        try
        {
            server._process = ChildProcesses.Start(
                command[0],
                command.Skip(1),
                line => server.OnLine(line, stderr: false),
                line => server.OnLine(line, stderr: true),
                environment);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or OperationCanceledException)
        {
            log.Dispose();
            error = ex.Message;
            return null;
        }
        error = server.WaitUntilReady(probe ?? (url => Probe(url + "/plaintext")));
        if (error is not null)
        {
            server.Dispose();
            return null;
        }
        server.MaxOpenFiles = FileLimit.OfProcess(server.Pid);
        return server;
    }

    private void OnLine(string line, bool stderr)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _log.WriteLine(stderr ? "[stderr] " + line : line);
            if (line.StartsWith("PID ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(4), CultureInfo.InvariantCulture, out int pid))
            {
                _pid = pid;
            }
            else if (line.StartsWith("listening on", StringComparison.Ordinal))
            {
                _listening = true;
            }
            else if (line.Contains("Uring transport: engine ", StringComparison.Ordinal))
            {
                EngineLine = line[(line.IndexOf("Uring transport:", StringComparison.Ordinal))..];
                string rest = line[(line.IndexOf("engine ", StringComparison.Ordinal) + "engine ".Length)..];
                Engine = rest.Split([',', ' ', '.'], 2)[0];
            }
        }
    }

    private string? WaitUntilReady(Func<string, string?> probe)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            lock (_gate)
            {
                if (_listening && _pid != 0)
                {
                    break;
                }
            }
            if (!IsAlive)
            {
                return $"exited with code {SafeExitCode()} before listening (see its log)";
            }
            if (clock.Elapsed > StartTimeout || ChildProcesses.Cancellation.IsCancellationRequested)
            {
                return $"did not print 'listening on' within {StartTimeout.TotalSeconds:0} s";
            }
            Thread.Sleep(50);
        }

        // The first request also JIT-compiles the request path; allow it a few tries.
        string? lastError = null;
        for (int attempt = 0; attempt < 20 && !ChildProcesses.Cancellation.IsCancellationRequested; attempt++)
        {
            lastError = probe(Url(""));
            if (lastError is null)
            {
                return null;
            }
            if (!IsAlive)
            {
                return $"exited with code {SafeExitCode()} after listening: {lastError}";
            }
            Thread.Sleep(250);
        }
        return $"the readiness probe failed: {lastError}";
    }

    /// <summary>One GET; null when it returned 200 "Hello, World!".</summary>
    public static string? Probe(string url)
    {
        try
        {
            using var handler = new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.Zero };
            // An https endpoint's certificate is self-signed, made at the server's start-up.
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            using var response = client.Send(request);
            using var reader = new StreamReader(response.Content.ReadAsStream());
            string body = reader.ReadToEnd();
            return response.StatusCode == HttpStatusCode.OK && body == "Hello, World!"
                ? null
                : $"status {(int)response.StatusCode}, body '{(body.Length > 60 ? body[..60] : body)}'";
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException or SocketException)
        {
            return ex.Message;
        }
    }

    /// <summary>The first port at or after <paramref name="from"/> that 127.0.0.1 can bind, skipping <paramref name="taken"/>.</summary>
    public static int FreePort(int from, ISet<int> taken)
    {
        for (int port = from; port < 65535; port++)
        {
            if (taken.Contains(port))
            {
                continue;
            }
            try
            {
                using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                probe.Bind(new IPEndPoint(IPAddress.Loopback, port));
                taken.Add(port);
                return port;
            }
            catch (SocketException)
            {
            }
        }
        throw new InvalidOperationException($"no free port from {from}");
    }

    private string SafeExitCode()
    {
        try
        {
            return _process.ExitCode.ToString(CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    public void Dispose()
    {
        ChildProcesses.Stop(_process);
        lock (_gate)
        {
            _disposed = true;
            _log.Dispose();
        }
        _process.Dispose();
    }
}
