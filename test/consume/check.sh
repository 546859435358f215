#!/usr/bin/env bash
# The user's path, checked outside the repository: the folder holds one package (Uring.Transport,
# with the ring layer inside it, license expression MIT, release notes and README); a throw-away web app that references it from a local feed with
# only `using Uring.Transport;` builds, serves one request and shows through IUringConnectionFeature
# that the transport served it; then the same app published with NativeAOT (no trim/AOT warning),
# served once more.
# Usage: test/consume/check.sh <packages-dir>   (exit 0: passed); ./build.sh test packs into it first
# (the same pack as ./build.sh pack).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PACKAGES="$1"
WORK="$(mktemp -d /tmp/uring-consume.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT # serve_once stops each app it starts

PKG="$(ls "$PACKAGES"/Uring.Transport.*.nupkg 2>/dev/null | grep -v '\.snupkg$' | head -n1 || true)"
[[ -n "$PKG" ]] || { echo "consume: FAIL (no Uring.Transport package in $PACKAGES: run ./build.sh pack or ./build.sh test)"; exit 1; }
VERSION="$(basename "$PKG" .nupkg)"; VERSION="${VERSION#Uring.Transport.}"
echo "consume: Uring.Transport $VERSION from ${PACKAGES}"

# One package: the ring layer travels inside it, not as a package of its own or a dependency.
OTHERS="$(ls "$PACKAGES"/*.nupkg | grep -v "/Uring.Transport\.$VERSION\.nupkg$" || true)"
[[ -z "$OTHERS" ]] || { echo "consume: FAIL (more than one package: $OTHERS)"; exit 1; }
LISTING="$(unzip -l "$PKG")" # (not piped into grep -q: with pipefail, unzip's SIGPIPE would fail the check)
grep -q "lib/net10.0/Uring.Native.dll" <<<"$LISTING" || { echo "consume: FAIL (Uring.Native.dll is not inside the package)"; exit 1; }
NUSPEC="$(unzip -p "$PKG" Uring.Transport.nuspec)"
if grep -q '<dependency ' <<<"$NUSPEC"; then echo "$NUSPEC"; echo "consume: FAIL (the package depends on other packages)"; exit 1; fi
grep -q '<license type="expression">MIT</license>' <<<"$NUSPEC" || { echo "$NUSPEC"; echo "consume: FAIL (the package does not carry the license expression MIT)"; exit 1; }
grep -q '<releaseNotes>' <<<"$NUSPEC" || { echo "consume: FAIL (the package has no release notes)"; exit 1; }
grep -q " README.md$" <<<"$LISTING" || { echo "consume: FAIL (README.md is not inside the package)"; exit 1; }
echo "consume: one package, the ring layer inside it, no package dependency, license MIT, release notes, README"

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

# Starts "$@" on a free port (port 0: the app logs the one it took), sends one request over bash's
# /dev/tcp (no curl needed) and prints the body: the engine's name, or "none".
serve_once() {
    "$@" --urls "http://127.0.0.1:0" >"$WORK/run.log" 2>&1 &
    local pid=$!
    local port="" answer="" _
    for _ in $(seq 1 200); do
        port="$(grep -o 'Now listening on: http://127.0.0.1:[0-9]*' "$WORK/run.log" | head -n1 | sed 's/.*://' || true)"
        [[ -n "$port" ]] && break
        sleep 0.1
    done
    if [[ -n "$port" ]] && exec 3<>"/dev/tcp/127.0.0.1/$port"; then
        printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
        # The body is one line of its own (chunked or not).
        answer="$(timeout 10 cat <&3 | tr -d '\r' | grep -E '^(IoUring|Epoll|none)$' | head -n1 || true)"
        exec 3<&-
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$answer"
}

check_answer() { # what answer
    case "$2" in
        IoUring|Epoll) echo "consume: $1 PASS (served by the $2 engine)";;
        *) cat "$WORK/run.log"; echo "consume: $1 FAIL (answer: '$2')"; exit 1;;
    esac
}

(cd "$WORK" && dotnet build -c Release --nologo -v q -o "$WORK/out" >"$WORK/build.log" 2>&1) || { cat "$WORK/build.log"; echo "consume: FAIL (the app did not build)"; exit 1; }
if grep -q "warning" "$WORK/build.log"; then cat "$WORK/build.log"; echo "consume: FAIL (warnings building the app)"; exit 1; fi
check_answer "JIT build" "$(serve_once dotnet "$WORK/out/App.dll")"

# NativeAOT: zero trim/AOT warnings, and the native binary serves too. Skipped (with the reason)
# without a native linker or when the ILCompiler package cannot be restored here.
if ! command -v clang >/dev/null && ! command -v gcc >/dev/null; then
    echo "consume: NativeAOT skipped: no native linker (clang or gcc) on PATH"
    exit 0
fi
if ! (cd "$WORK" && dotnet restore -r linux-x64 -p:PublishAot=true --nologo -v q >"$WORK/aot-restore.log" 2>&1); then
    echo "consume: NativeAOT skipped: the ILCompiler package did not restore:"
    grep -m3 -E "error" "$WORK/aot-restore.log" || true
    exit 0
fi
(cd "$WORK" && dotnet publish -c Release -r linux-x64 -p:PublishAot=true --no-restore --nologo -v q -o "$WORK/aot" >"$WORK/aot.log" 2>&1) || { cat "$WORK/aot.log"; echo "consume: FAIL (the NativeAOT publish failed)"; exit 1; }
if grep -q "warning" "$WORK/aot.log"; then cat "$WORK/aot.log"; echo "consume: FAIL (trim/AOT warnings)"; exit 1; fi
check_answer "NativeAOT publish" "$(serve_once "$WORK/aot/App")"
