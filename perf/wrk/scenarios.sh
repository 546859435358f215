# Sourced by perf/profile.sh and perf/ab-together.sh: a load scenario of ./build.sh bench
# (perf/Uring.Perf.Runner/Scenarios.cs) as wrk's arguments, so both scripts apply the same load.
_wrk_scripts="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# wrk_scenario NAME: sets path (the URL's path), wrk_env (for env), wrk_args (before -d) and
# wrk_tail (after the URL); returns 1 for a name it does not know.
wrk_scenario() {
    wrk_env=() wrk_args=() wrk_tail=()
    case "$1" in
        plaintext-64) path=/plaintext; wrk_args=(-c64) ;;
        plaintext-pipelined-16) path=/plaintext; wrk_args=(-c256 -s "$_wrk_scripts/pipeline.lua"); wrk_tail=(-- 16) ;;
        close-64) path=/plaintext; wrk_args=(-c64 -H "Connection: close") ;;
        download-1m-16) path="/bytes?size=1048576"; wrk_args=(-c16) ;;
        upload-1m-16) path=/upload; wrk_env=(UPLOAD_BYTES=1048576); wrk_args=(-c16 -s "$_wrk_scripts/upload.lua") ;;
        *) return 1 ;;
    esac
}
