#!/usr/bin/env bash
# Build, test, run and package Uring.Transport.
#
#   ./build.sh help          list the verbs
#   ./build.sh test          build Release and run every test project;
#                            the last line printed is "N passed, N failed[, N skipped]"
#
# Needs only bash, coreutils, sed, grep and the .NET SDK named in global.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

SLN="Uring.Transport.sln"
ARTIFACTS="$ROOT/artifacts"
TEST_RESULTS="$ARTIFACTS/test-results"
PACKAGES="$ARTIFACTS/packages"
# How long one test may run before the blame collector kills the test host
# (the run then fails instead of hanging CI). Override for local experiments.
TEST_HANG_TIMEOUT="${TEST_HANG_TIMEOUT:-5m}"

export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DOTNET_GENERATE_ASPNET_CERTIFICATE=false
# In CI, do not leave MSBuild worker nodes running after the build: they can hold
# the job's output pipe open after this script has finished.
if [[ -n "${CI:-}" ]]; then
    export MSBUILDDISABLENODEREUSE=1
fi

usage() {
    cat <<'EOF'
Usage: ./build.sh <verb> [args...]

Verbs:
  build          dotnet restore + dotnet build -c Release of Uring.Transport.sln
  test [args]    build Release, then run every test project (test/*/*.csproj with
                 <IsTestProject>true</IsTestProject>) with dotnet test
                 (extra args go to dotnet test, e.g. ./build.sh test --filter Name~Ring).
                 Then runs the io_uring rows again as on an older kernel (a test-only
                 feature mask, URING_TEST_KERNEL): --kernels "5.19 6.0" picks the
                 kernels (default 5.19), --kernels none skips this pass; it is also
                 skipped when extra args are given.
                 Also runs the soak test (perf/Uring.Soak) for 30 s per engine after
                 the tests, counted as one more test; --soak MINUTES changes that,
                 --soak 0 skips it.
                 Then the consume check (test/consume/check.sh, one more test): packs,
                 builds a throw-away app outside the repo on the package with only
                 `using Uring.Transport;` and serves one request, JIT and NativeAOT
                 (no trim/AOT warning allowed); --no-consume skips
                 it, as do extra args.
                 TRX files go to artifacts/test-results/; the last line printed is
                 "N passed, N failed" (", N skipped" when tests were skipped).
                 Exits non-zero if any test failed or a test run crashed or hung
                 (a test hung for TEST_HANG_TIMEOUT, default 5m, is killed).
  run [args]     run the sample server (perf/Uring.Perf.App) on the uring transport,
                 default engine, at http://127.0.0.1:5000; extra args go to the app
  bench [args]   run the load runner (perf/Uring.Perf.Runner); extra args go to it
  soak [args]    run the soak test (perf/Uring.Soak): mixed verified load against the
                 sample server on each engine, --minutes N each (default 10); extra args
                 go to it (--help lists them). Exits non-zero if the soak failed.
  pack           dotnet pack -c Release src/Uring.Transport into artifacts/packages/:
                 one package (the ring layer, Uring.Native.dll, travels inside it) and its
                 symbols (.snupkg)
  help           this text

Environment:
  URING_TRANSPORT_ENGINE=iouring|epoll|auto   force the ring engine (overrides options)
EOF
}

die() {
    echo >&2
    echo "ERROR: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------
# .NET SDK check: dotnet must exist and an SDK must satisfy global.json.
# ---------------------------------------------------------------------------
json_field() { # $1 = key, reads global.json; prints the first string value of that key
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$ROOT/global.json" | head -n1
}

install_hint() {
    local channel="$1"
    cat >&2 <<EOF

Install the .NET SDK $channel (it includes the ASP.NET Core $channel shared framework), e.g.:

    curl -sSL https://dot.net/v1/dotnet-install.sh -o dotnet-install.sh
    bash dotnet-install.sh --channel $channel          # installs into ~/.dotnet
    export DOTNET_ROOT="\$HOME/.dotnet" PATH="\$HOME/.dotnet:\$PATH"

or use your distribution's package (Debian/Ubuntu: see
https://learn.microsoft.com/dotnet/core/install/linux). Then run ./build.sh again.
EOF
}

check_dotnet() {
    local want roll want_major want_minor want_patch channel
    want="$(json_field version)"
    roll="$(json_field rollForward)"
    want="${want:-10.0.100}"
    roll="${roll:-latestPatch}"
    want="${want%%-*}"                       # drop a prerelease suffix
    IFS=. read -r want_major want_minor want_patch <<<"$want"
    want_patch="${want_patch:-0}"
    channel="$want_major.$want_minor"

    # dotnet-install.sh's default location, if dotnet is not on PATH yet.
    if ! command -v dotnet >/dev/null 2>&1; then
        local d
        for d in "${DOTNET_ROOT:-}" "$HOME/.dotnet"; do
            if [[ -n "$d" && -x "$d/dotnet" ]]; then
                export DOTNET_ROOT="$d" PATH="$d:$PATH"
                break
            fi
        done
    fi
    if ! command -v dotnet >/dev/null 2>&1; then
        echo >&2
        echo "ERROR: 'dotnet' was not found on PATH. This project needs the .NET SDK $want or newer" >&2
        echo "       in the $channel line (global.json: version $want, rollForward $roll)." >&2
        install_hint "$channel"
        exit 1
    fi

    local sdks line v pre maj min pat ok="" have=()
    sdks="$(dotnet --list-sdks 2>/dev/null || true)"
    while IFS= read -r line; do
        [[ -z "$line" ]] && continue
        v="${line%% *}"
        have+=("$v")
        pre=""
        [[ "$v" == *-* ]] && pre=1
        v="${v%%-*}"
        IFS=. read -r maj min pat <<<"$v"
        [[ "$maj" =~ ^[0-9]+$ && "$min" =~ ^[0-9]+$ && "$pat" =~ ^[0-9]+$ ]] || continue
        # A prerelease of the requested version (10.0.100-rc.2) is older than the release.
        if [[ -n "$pre" ]] && (( maj == want_major && min == want_minor && pat == want_patch )); then continue; fi
        case "$roll" in
            latestMajor|major)
                if (( maj > want_major || (maj == want_major && (min > want_minor || (min == want_minor && pat >= want_patch))) )); then ok="$line"; fi ;;
            latestMinor|minor)
                if (( maj == want_major && (min > want_minor || (min == want_minor && pat >= want_patch)) )); then ok="$line"; fi ;;
            disable)
                if (( maj == want_major && min == want_minor && pat == want_patch )); then ok="$line"; fi ;;
            latestPatch|patch)
                if (( maj == want_major && min == want_minor && pat / 100 == want_patch / 100 && pat >= want_patch )); then ok="$line"; fi ;;
            *)  # latestFeature, feature
                if (( maj == want_major && min == want_minor && pat >= want_patch )); then ok="$line"; fi ;;
        esac
    done <<<"$sdks"

    if [[ -z "$ok" ]]; then
        echo >&2
        echo "ERROR: no suitable .NET SDK found. global.json asks for SDK $want (rollForward: $roll)," >&2
        echo "       i.e. a $channel SDK of version $want or newer." >&2
        echo "       'dotnet' is $(command -v dotnet); installed SDKs: ${have[*]:-none}" >&2
        install_hint "$channel"
        exit 1
    fi

    if ! dotnet --list-runtimes 2>/dev/null | grep -q "^Microsoft\.AspNetCore\.App $want_major\."; then
        echo >&2
        echo "ERROR: the ASP.NET Core $want_major shared framework (Microsoft.AspNetCore.App $want_major.x) is not installed" >&2
        echo "       next to $(command -v dotnet). Installed runtimes:" >&2
        dotnet --list-runtimes >&2 2>/dev/null || true
        install_hint "$channel"
        exit 1
    fi
}

# ---------------------------------------------------------------------------
# Verbs
# ---------------------------------------------------------------------------
do_build() {
    echo "==> dotnet restore $SLN"
    dotnet restore "$SLN" || return $?
    echo "==> dotnet build $SLN -c Release"
    dotnet build "$SLN" -c Release --no-restore || return $?
}

# Sum one attribute over "<Counters .../>" tags. $1 = tag, $2 = attribute name.
counter() {
    local v
    v="$(printf '%s\n' "$1" | sed -n "s/.*[[:space:]]$2=\"\([0-9][0-9]*\)\".*/\1/p" | head -n1)"
    echo "${v:-0}"
}

# Print the summary line (always the last line of `test`) and exit.
summary_and_exit() { # passed failed skipped
    local line="$1 passed, $2 failed"
    if (( $3 > 0 )); then line+=", $3 skipped"; fi
    echo
    echo "$line"
    if (( $2 > 0 )); then exit 1; fi
    exit 0
}

do_test() {
    local projects=() p soak_minutes="0.5" kernels="5.19" consume=1 args=()
    while (( $# > 0 )); do
        if [[ "$1" == "--no-consume" ]]; then
            consume=0
            shift
        elif [[ "$1" == "--soak" ]]; then
            if [[ $# -lt 2 ]]; then
                echo "ERROR: --soak needs a number of minutes (e.g. --soak 0.5)." >&2
                summary_and_exit 0 1 0
            fi
            soak_minutes="$2"
            shift 2
        elif [[ "$1" == "--kernels" ]]; then
            if [[ $# -lt 2 ]]; then
                echo "ERROR: --kernels needs a list (e.g. --kernels \"5.19 6.0\") or none." >&2
                summary_and_exit 0 1 0
            fi
            kernels="$2"
            [[ "$kernels" == "none" ]] && kernels=""
            shift 2
        else
            args+=("$1")
            shift
        fi
    done
    set -- "${args[@]+"${args[@]}"}"
    # Test projects only: test/ also holds helpers the tests start (a child server process).
    while IFS= read -r p; do
        if grep -q '<IsTestProject>true</IsTestProject>' "$p"; then projects+=("$p"); fi
    done < <(find test -mindepth 2 -maxdepth 2 -name '*.csproj' 2>/dev/null | sort)

    if (( ${#projects[@]} == 0 )); then
        echo "ERROR: no test projects found (test/*/*.csproj); the test runner produced no results." >&2
        summary_and_exit 0 1 0
    fi

    if ! do_build; then
        echo >&2
        echo "ERROR: the Release build failed (see the errors above); no test was run." >&2
        summary_and_exit 0 1 0
    fi
    # A test project that is not in the .sln was not built above: build it on its own.
    for p in "${projects[@]}"; do
        if ! grep -qF "$(basename "$p")" "$SLN"; then
            echo "==> warning: $p is not in $SLN; building it separately"
            if ! dotnet build "$p" -c Release; then
                echo "ERROR: building $p failed; no test was run." >&2
                summary_and_exit 0 1 0
            fi
        fi
    done

    rm -rf "$TEST_RESULTS"
    mkdir -p "$TEST_RESULTS"

    local name trx rc results=()
    for p in "${projects[@]}"; do
        name="$(basename "$p" .csproj)"
        echo "==> dotnet test $p"
        rc=0
        dotnet test "$p" --no-build -c Release \
            --logger "trx;LogFileName=$name.trx" \
            --results-directory "$TEST_RESULTS" \
            --blame-hang-timeout "$TEST_HANG_TIMEOUT" --blame-hang-dump-type mini \
            "$@" || rc=$?
        results+=("$name:$rc")
    done

    # The io_uring rows again, as on an older kernel: every ring withholds the features that kernel
    # lacks (URING_TEST_KERNEL, a mask read only by the test assemblies), so the fallbacks run too.
    local k
    if (( $# == 0 )); then
        for k in $kernels; do
            for p in "${projects[@]}"; do
                name="$(basename "$p" .csproj).kernel-$k"
                echo "==> dotnet test $p, io_uring rows, as on Linux $k (URING_TEST_KERNEL=$k)"
                rc=0
                URING_TEST_KERNEL="$k" dotnet test "$p" --no-build -c Release \
                    --filter "DisplayName~IoUring" \
                    --logger "trx;LogFileName=$name.trx" \
                    --results-directory "$TEST_RESULTS" \
                    --blame-hang-timeout "$TEST_HANG_TIMEOUT" --blame-hang-dump-type mini || rc=$?
                results+=("$name:$rc")
            done
        done
    fi

    local passed=0 failed=0 skipped=0 notes=() flat tag pf ps r
    if [[ -n "$soak_minutes" && "$soak_minutes" != "0" ]]; then
        # Bounded like a test: the soak's own time per engine, plus start-up and drain, plus slack.
        local limit
        limit=$(awk -v m="$soak_minutes" 'BEGIN { printf "%d", m * 60 * 2 + 300 }')
        echo "==> soak: $soak_minutes minute(s) per engine (killed after ${limit}s)"
        rc=0
        timeout --kill-after=30 "$limit" dotnet run --no-build -c Release --project perf/Uring.Soak -- --minutes "$soak_minutes" || rc=$?
        if (( rc == 0 )); then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            notes+=("Uring.Soak: failed (exit code $rc; see its summary above)")
        fi
    fi
    # The user's path: pack, a throw-away app outside the repo on the package, one request (one test).
    if (( $# == 0 )) && [[ "$consume" == "1" ]]; then
        echo "==> consume check: test/consume/check.sh"
        rc=0
        { do_pack "$ARTIFACTS/consume-packages" >/dev/null && timeout --kill-after=10 300 test/consume/check.sh "$ARTIFACTS/consume-packages"; } || rc=$?
        if (( rc == 0 )); then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            notes+=("consume check: failed (exit code $rc; see its output above)")
        fi
    fi
    for r in "${results[@]}"; do
        name="${r%:*}"
        rc="${r##*:}"
        trx="$TEST_RESULTS/$name.trx"
        if [[ ! -s "$trx" ]]; then
            notes+=("$name: no TRX file was written (dotnet test exit code $rc): the test runner crashed or did not start")
            failed=$((failed + 1))
            continue
        fi
        flat="$(tr '\r\n' '  ' <"$trx")"
        tag="$(printf '%s\n' "$flat" | grep -o '<Counters [^>]*>' | head -n1 || true)"
        if [[ -z "$tag" ]]; then
            notes+=("$name: $trx has no <Counters> element (dotnet test exit code $rc): the test run was cut short")
            failed=$((failed + 1))
            continue
        fi
        pf=$(( $(counter "$tag" failed) + $(counter "$tag" error) + $(counter "$tag" timeout) + $(counter "$tag" aborted) ))
        passed=$((passed + $(counter "$tag" passed)))
        # xunit's skipped tests are results with outcome="NotExecuted"; the Counters
        # element does not always count them (notExecuted="0"), so count the results.
        ps="$(printf '%s\n' "$flat" | grep -o '<UnitTestResult [^>]*>' | grep -c 'outcome="NotExecuted"' || true)"
        if (( $(counter "$tag" notExecuted) > ps )); then ps="$(counter "$tag" notExecuted)"; fi
        skipped=$((skipped + ps))
        if (( rc != 0 && pf == 0 )); then
            notes+=("$name: dotnet test exited with code $rc but no test is recorded as failed: the test host crashed, hung (blame-hang-timeout $TEST_HANG_TIMEOUT) or was aborted; see $TEST_RESULTS")
            pf=1
        fi
        if (( rc == 0 && $(counter "$tag" total) == 0 )); then
            notes+=("$name: warning: no test ran")
        fi
        failed=$((failed + pf))
    done

    echo
    echo "==> test results (TRX files in ${TEST_RESULTS#"$ROOT/"}/)"
    local n
    for n in "${notes[@]+"${notes[@]}"}"; do echo "    $n"; done
    summary_and_exit "$passed" "$failed" "$skipped"
}

run_project() { # $1 = project dir, $2 = what it is, rest = args after --
    local dir="$1" what="$2"
    shift 2
    if ! compgen -G "$dir/*.csproj" >/dev/null; then
        echo "ERROR: $what ($dir) is not in the repository yet, so there is nothing to run." >&2
        echo "       Try './build.sh build' or './build.sh test' meanwhile." >&2
        exit 1
    fi
    echo "==> dotnet run -c Release --project $dir -- $*"
    exec dotnet run -c Release --project "$dir" -- "$@"
}

do_pack() { # [output dir, default artifacts/packages]
    local out="${1:-$PACKAGES}" p
    rm -rf "$out"
    mkdir -p "$out"
    for p in src/Uring.Transport/Uring.Transport.csproj; do
        echo "==> dotnet pack $p -c Release -o ${out#"$ROOT/"}"
        dotnet pack "$p" -c Release -o "$out"
    done
    echo
    echo "Packages:"
    ls -1 "$out"
}

verb="${1:-help}"
[[ $# -gt 0 ]] && shift

case "$verb" in
    help|-h|--help)
        usage
        exit 0 ;;
    build|test|run|bench|soak|pack) ;;
    *)
        echo "ERROR: unknown verb '$verb'" >&2
        echo >&2
        usage >&2
        exit 2 ;;
esac

check_dotnet

case "$verb" in
    build) do_build ;;
    test)  do_test "$@" ;;
    run)   run_project perf/Uring.Perf.App "the sample server" \
               --transport uring --urls http://127.0.0.1:5000 "$@" ;;
    bench) run_project perf/Uring.Perf.Runner "the benchmark runner" "$@" ;;
    soak)  run_project perf/Uring.Soak "the soak test" "$@" ;;
    pack)  do_pack ;;
esac
