#!/usr/bin/env bash
# A/B of this build against another, both servers under load at the same time: the two sample
# apps pinned to one CPU (0), one wrk each on another (1), started together, for every run. A
# slowdown of the machine (a neighbour, the host) then lands on both builds at once instead of on
# whichever ran in that minute, so the paired ratio spreads far less than in an interleaved run
# (./build.sh bench --baseline-build). Figure: server CPU µs per request (utime+stime / requests).
#
#   perf/ab-together.sh --base DIR [--scenario NAME] [--transport uring|uring-epoll]
#                       [--runs N] [--seconds S] [--out DIR]
#
# DIR is another checkout of this repository, built in Release like this one
# (`dotnet build Uring.Transport.sln -c Release` in both). Scenarios, as in ./build.sh bench:
# plaintext-64, plaintext-pipelined-16, close-64, download-1m-16, upload-1m-16. Pinned only:
# needs 2 CPUs; both servers share CPU 0, so each gets about half of it. Needs wrk and curl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP=perf/Uring.Perf.App/bin/Release/net10.0/Uring.Perf.App.dll
base="" scenario=plaintext-64 transport=uring runs=12 seconds=10 out=""

die() { echo "ab-together.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --base) base="${2:-}"; shift 2 ;;
        --scenario) scenario="${2:-}"; shift 2 ;;
        --transport) transport="${2:-}"; shift 2 ;;
        --runs) runs="${2:-}"; shift 2 ;;
        --seconds) seconds="${2:-}"; shift 2 ;;
        --out) out="${2:-}"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (--help lists them)" ;;
    esac
done
[[ -n "$base" ]] || die "--base DIR is required (the other checkout, built in Release)"
base="$(cd "$base" 2>/dev/null && pwd)" || die "--base: no such folder"
for app in "$ROOT/$APP" "$base/$APP"; do [[ -f "$app" ]] || die "$app does not exist: build that checkout in Release"; done
case "$transport" in uring|uring-epoll) ;; *) die "--transport must be uring or uring-epoll, not '$transport'" ;; esac
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a whole number (at least 1), not '$runs'"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "--seconds must be whole seconds (at least 1), not '$seconds'"
(( $(nproc) >= 2 )) || die "needs 2 CPUs (servers on CPU 0, wrk on CPU 1)"
for tool in wrk curl taskset python3; do command -v "$tool" >/dev/null || die "needs $tool on PATH"; done

source "$ROOT/perf/wrk/scenarios.sh"
wrk_scenario "$scenario" || die "unknown --scenario '$scenario' (plaintext-64, plaintext-pipelined-16, close-64, download-1m-16, upload-1m-16)"
load() { # PORT SECONDS: one wrk on CPU 1 against the server on PORT
    env "${wrk_env[@]}" taskset -c 1 wrk -t1 "${wrk_args[@]}" -d"$2"s "http://127.0.0.1:$1$path" "${wrk_tail[@]}"
}

out="${out:-$ROOT/perf/results/$(date -u +%Y%m%d-%H%M%S)-together-$scenario-$transport}"
mkdir -p "$out"
rm -f "$out/runs.tsv"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
ports=(5301 5302)
for port in "${ports[@]}"; do
    ! curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/" || die "port $port is in use already (another run still going?)"
done
for side in 0 1; do
    dir=$ROOT; [[ $side == 1 ]] && dir=$base
    taskset -c 0 dotnet "$dir/$APP" --transport "$transport" --urls "http://127.0.0.1:${ports[$side]}" --rings 1 \
        > "$out/server-$([[ $side == 0 ]] && echo new || echo base).log" 2>&1 &
    pids+=($!)
done
for port in "${ports[@]}"; do
    for _ in $(seq 150); do curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/plaintext" && continue 2; sleep 0.2; done
    die "the server on port $port did not answer within 30 s (see $out/server-*.log)"
done
alive() { kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null || die "a server exited (see $out/server-*.log)"; }
alive

ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; } # utime + stime, in clock ticks
requests() { awk '/requests in/ { print $1 }' "$1"; }
hz=$(getconf CLK_TCK)

echo "==> $scenario, $transport: this build ($(git -C "$ROOT" rev-parse --short HEAD)) and $base ($(git -C "$base" rev-parse --short HEAD)), together, $runs x $seconds s" | tee "$out/summary.txt"
both() { # FIRST-PORT FIRST-OUT SECOND-PORT SECOND-OUT: two wrk started together; waits for both (not the servers)
    load "$1" "$seconds" > "$2" & local a=$!
    load "$3" "$seconds" > "$4" & local b=$!
    wait "$a" "$b"
}
both "${ports[0]}" /dev/null "${ports[1]}" /dev/null # warm-up
for i in $(seq "$runs"); do
    n0=$(ticks "${pids[0]}") b0=$(ticks "${pids[1]}")
    # Which wrk starts first alternates; they start microseconds apart.
    if (( i % 2 )); then both "${ports[0]}" "$out/wrk-new-$i.txt" "${ports[1]}" "$out/wrk-base-$i.txt"
    else both "${ports[1]}" "$out/wrk-base-$i.txt" "${ports[0]}" "$out/wrk-new-$i.txt"
    fi
    alive
    n1=$(ticks "${pids[0]}") b1=$(ticks "${pids[1]}")
    rn=$(requests "$out/wrk-new-$i.txt") rb=$(requests "$out/wrk-base-$i.txt")
    [[ "$rn" =~ ^[1-9][0-9]*$ && "$rb" =~ ^[1-9][0-9]*$ ]] || die "run $i: wrk reported no requests (see $out/wrk-*-$i.txt)"
    awk -v i="$i" -v hz="$hz" -v tn=$((n1 - n0)) -v rn="$rn" -v tb=$((b1 - b0)) -v rb="$rb" -v raw="$out/runs.tsv" 'BEGIN {
        n = tn * 1e6 / hz / rn; b = tb * 1e6 / hz / rb
        printf "%.6f\t%.6f\t%.6f\n", n, b, n / b >> raw
        printf "run %d: new %.3f µs/req (%d requests), base %.3f µs/req (%d requests), new / base %.3f\n", i, n, rn, b, rb, n / b }' \
        | tee -a "$out/summary.txt"
done
python3 - "$out/runs.tsv" <<'PY' | tee -a "$out/summary.txt"
import statistics, sys
rows = [[float(x) for x in line.split()] for line in open(sys.argv[1])]
new, base, ratio = ([r[k] for r in rows] for k in range(3))
print(f"paired new / base: median {statistics.median(ratio):.3f}, {sum(r < 1 for r in ratio)} of {len(ratio)} runs below 1, "
      f"{min(ratio):.3f} to {max(ratio):.3f}; medians {statistics.median(new):.3f} / {statistics.median(base):.3f} µs/req")
PY
