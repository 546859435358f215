#!/usr/bin/env bash
# The user's path, checked outside the repository: pack Uring.Transport, create a throw-away web app
# that references the package from a local feed with only `using Uring.Transport;`, build it, serve
# one request and check through IUringConnectionFeature that the transport served it.
# Usage: test/consume/check.sh <packages-dir>   (exit 0: passed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PACKAGES="$1"
WORK="$(mktemp -d /tmp/uring-consume.XXXXXX)"
trap 'kill "${APP_PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

rm -rf "$PACKAGES"; mkdir -p "$PACKAGES"
for p in src/Uring.Native/Uring.Native.csproj src/Uring.Transport/Uring.Transport.csproj; do
    dotnet pack "$ROOT/$p" -c Release -o "$PACKAGES" --nologo -v q >/dev/null
done
PKG="$(ls "$PACKAGES"/Uring.Transport.*.nupkg | grep -v '\.snupkg$' | head -n1)"
VERSION="$(basename "$PKG" .nupkg)"; VERSION="${VERSION#Uring.Transport.}"
echo "consume: packed Uring.Transport $VERSION"

cat >"$WORK/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="uring-local" value="$PACKAGES" />
  </packageSources>
</configuration>
XML
cat >"$WORK/App.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk.Web">
  <PropertyGroup>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <!-- A cache of its own: never a stale copy of the same version from an earlier pack. -->
    <RestorePackagesPath>$WORK/packages</RestorePackagesPath>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Uring.Transport" Version="$VERSION" />
  </ItemGroup>
</Project>
XML
cat >"$WORK/Program.cs" <<'CS'
using Uring.Transport;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseUringTransport();
var app = builder.Build();
app.MapGet("/", (HttpContext context) => context.Features.Get<IUringConnectionFeature>()?.Engine.ToString() ?? "none");
app.Run();
CS
cp "$ROOT/global.json" "$WORK/" 2>/dev/null || true

(cd "$WORK" && dotnet build -c Release --nologo -v q -o "$WORK/out" >"$WORK/build.log" 2>&1) || { cat "$WORK/build.log"; echo "consume: FAIL (the app did not build)"; exit 1; }
if grep -q "warning" "$WORK/build.log"; then cat "$WORK/build.log"; echo "consume: FAIL (warnings building the app)"; exit 1; fi

# Port 0: the app takes a free port and logs it; the request goes over bash's /dev/tcp (no curl needed).
dotnet "$WORK/out/App.dll" --urls "http://127.0.0.1:0" >"$WORK/run.log" 2>&1 &
APP_PID=$!
PORT=""
for _ in $(seq 1 200); do
    PORT="$(grep -o 'Now listening on: http://127.0.0.1:[0-9]*' "$WORK/run.log" | head -n1 | sed 's/.*://' || true)"
    [[ -n "$PORT" ]] && break
    sleep 0.1
done
ANSWER=""
if [[ -n "$PORT" ]] && exec 3<>"/dev/tcp/127.0.0.1/$PORT"; then
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    # The body is one line of its own (chunked or not): the engine's name, or "none".
    ANSWER="$(timeout 10 cat <&3 | tr -d '\r' | grep -E '^(IoUring|Epoll|none)$' | head -n1 || true)"
    exec 3<&-
fi
kill "$APP_PID" 2>/dev/null || true
wait "$APP_PID" 2>/dev/null || true
case "$ANSWER" in
    IoUring|Epoll) echo "consume: PASS (a new app on the package, served by the $ANSWER engine)";;
    *) cat "$WORK/run.log"; echo "consume: FAIL (answer: '$ANSWER')"; exit 1;;
esac
