#!/usr/bin/env bash
# Where a server's CPU goes under one benchmark load: perf record of the sample server
# (perf/Uring.Perf.App) in steady state, its samples split into transport / Kestrel / kernel.
#
#   perf/profile.sh [--transport uring|uring-epoll|sockets] [--scenario NAME] [--defaults]
#                   [--warmup S] [--seconds S] [--out DIR]
#
# Scenarios (as in ./build.sh bench): plaintext-64, plaintext-pipelined-16, close-64,
# download-1m-16. Pinned by default like the bench (server on CPU 0 with one I/O loop, wrk on
# CPU 1); --defaults runs both unpinned with the library's default loop count and wrk -t2.
# Needs perf (linux-perf) and wrk, and root or kernel.perf_event_paranoid <= 1.
#
# The warm-up is long on purpose: tiered compilation still runs for tens of seconds under
# connection churn (close-64), and a profile taken before it ends shows the JIT, not the server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$ROOT/perf/Uring.Perf.App/bin/Release/net10.0/Uring.Perf.App"
transport=uring scenario=plaintext-64 defaults=0 warmup=40 seconds=8 out=""

die() { echo "profile.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --transport) transport="${2:-}"; shift 2 ;;
        --scenario) scenario="${2:-}"; shift 2 ;;
        --defaults) defaults=1; shift ;;
        --warmup) warmup="${2:-}"; shift 2 ;;
        --seconds) seconds="${2:-}"; shift 2 ;;
        --out) out="${2:-}"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (--help lists them)" ;;
    esac
done
case "$transport" in uring|uring-epoll|sockets) ;; *) die "--transport must be uring, uring-epoll or sockets, not '$transport'" ;; esac
[[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup must be whole seconds, not '$warmup'"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "--seconds must be whole seconds (at least 1), not '$seconds'"
for tool in perf wrk curl; do command -v "$tool" >/dev/null || die "needs $tool on PATH (apt-get install linux-perf wrk curl)"; done

source "$ROOT/perf/wrk/scenarios.sh"
case "$scenario" in
    plaintext-64|plaintext-pipelined-16|close-64|download-1m-16) wrk_scenario "$scenario" ;;
    *) die "--scenario must be plaintext-64, plaintext-pipelined-16, close-64 or download-1m-16, not '$scenario'" ;;
esac

[[ -x "$APP" ]] || dotnet build -c Release "$ROOT/perf/Uring.Perf.App" -v q -nologo >/dev/null
out="${out:-$(mktemp -d /tmp/uring-profile.XXXXXX)}"
mkdir -p "$out"
port=$(( 20000 + RANDOM % 20000 ))
url="http://127.0.0.1:$port$path"

server_args=(--transport "$transport" --urls "http://127.0.0.1:$port")
if [[ $defaults == 1 ]]; then
    server_pin=() wrk_pin=() threads=2
else
    server_pin=(taskset -c 0) wrk_pin=(taskset -c 1) threads=1
    [[ $transport == sockets ]] || server_args+=(--rings 1)
fi

# JIT frames need the runtime's perf map; W^X off keeps the map's addresses the executed ones.
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 "${server_pin[@]}" "$APP" "${server_args[@]}" >"$out/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -s -m 1 -o /dev/null "$url" && break
    kill -0 "$pid" 2>/dev/null || die "the server exited at start-up (see $out/server.log)"
    sleep 0.1
done
curl -s -m 1 -o /dev/null "$url" || die "the server did not answer $url within 10 s (see $out/server.log)"

load() { timeout $(( $1 + 10 )) "${wrk_pin[@]}" wrk -t"$threads" "${wrk_args[@]}" -d"$1"s "$url" "${wrk_tail[@]}"; }
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

echo "warming up $transport on $scenario for $warmup s ..." >&2
load "$warmup" >/dev/null
load $(( seconds + 4 )) >"$out/wrk.txt" &
sleep 2
t0=$(ticks "$pid") n0=$(date +%s%N)
timeout $(( seconds + 10 )) perf record -F 1999 -o "$out/perf.data" -p "$pid" -- sleep "$seconds" 2>"$out/perf-record.log" >/dev/null
t1=$(ticks "$pid") n1=$(date +%s%N)
wait $!
kill "$pid"; wait "$pid" 2>/dev/null || true
trap - EXIT

perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null >"$out/symbols.txt"
grep -qE '^ *[0-9.]+% ' "$out/symbols.txt" || die "perf recorded no samples (see $out/perf-record.log)"

echo "$transport, $scenario$([[ $defaults == 1 ]] && echo ', defaults (unpinned)'): $(awk '/Requests\/sec/ { print $2 }' "$out/wrk.txt") req/s," \
     "server CPU $(( (t1 - t0) * 100000000000 / ($(getconf CLK_TCK) * (n1 - n0)) ))% of a core while recorded; files in $out"
# The owner of a JIT frame is the assembly in brackets just before its type name
# ("instance void [Asm] Type::Method"); a bracket glued to a type ("[System.Runtime]System.X")
# is a return or parameter type.
awk '
function category(line,    sym, a) {
    if (line ~ /\[k\] /) return kernel(line)
    sym = line; sub(/.*\[\.\] /, "", sym)
    if (match(sym, /\[[A-Za-z0-9_.]+\] [A-Za-z_<]/)) {
        a = substr(sym, RSTART + 1, RLENGTH - 4)
        if (a ~ /^(Uring\.Transport|Uring\.Native|Microsoft\.AspNetCore\.Server\.Kestrel\.Transport|System\.Net\.Sockets)/) return "transport (managed)"
        if (a ~ /^(Microsoft\.AspNetCore|Microsoft\.Extensions)/) return "Kestrel and ASP.NET Core"
        if (a ~ /^System\.IO\.Pipelines/) return "System.IO.Pipelines"
        if (a ~ /^Uring\.Perf/) return "the app"
        return "other .NET libraries (CoreLib, BCL)"
    }
    if (line ~ /libSystem\.Native/) return "transport (managed)"
    if (line ~ /libcoreclr|libclrjit| stub |JIT_/) return "runtime native (GC, thread pool, JIT, stubs)"
    if (line ~ /libc\.so|ld-linux/) return "libc"
    return "other"
}
function kernel(line,    s) {
    s = line; sub(/.*\[k\] /, "", s); sub(/ .*/, "", s)
    if (s ~ /^(io_|__io_|tctx_|task_work|llist|__do_sys_io_uring|__x64_sys_io_uring)/) return "kernel: io_uring"
    if (s ~ /^(ep_|__ep_|do_epoll|epoll|do_syscall|entry_SYSCALL|syscall_|__x64_sys|__sys_|irqentry|exit_to_user|fdget|__fdget|fget|fput|__fget|x64_sys_call)/) return "kernel: syscalls, epoll, fds"
    if (s ~ /^(finish_task_switch|__schedule|schedule|try_to_wake|ttwu|enqueue|dequeue|pick_next|update_curr|update_load|select_task|set_next|put_prev|__switch_to|psi_|do_sched_yield|sched_|__sched|futex|__futex|wake_up|__wake_up)/) return "kernel: scheduler, futex"
    if (s ~ /^(tcp|__tcp|ip_|__ip|inet|__inet|net_|__net|skb|__skb|kfree_skb|sk_|__sk|sock_|__sock|bbr|dev_|__dev|loopback|validate_xmit|netif|__netif|napi|process_backlog|__local_bh|handle_softirqs|__do_softirq|lock_sock|release_sock|__alloc_skb|kmalloc_reserve|do_softirq|raw_local|ipv4|ipv6|security_socket|__napi|eth_|import_ubuf|_copy|copy_|__copy|rep_movs|__check_object|__virt_addr|check_heap|_raw_spin|raw_spin|queued_spin|__raw_callee_save___pv_queued_spin)/) return "kernel: TCP/IP, copies, socket locks"
    return "kernel: other (slab memory, timers, RCU, files)"
}
/^ *[0-9.]+% / { p = $1; sub(/%/, "", p); c = category($0); share[c] += p; total += p }
END {
    for (c in share) printf "  %6.1f %%  %s\n", share[c] * 100 / total, c
}' "$out/symbols.txt" | sort -t% -k1,1 -rn
