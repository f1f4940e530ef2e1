#!/usr/bin/env bash
# HTTP/2 requests/s, closed loop: h2load (Debian's nghttp2-client) vs ipcbench's own client
# (`ipcbench http-load`), both against one ipcbench origin (`ipcbench http-origin`), with the
# same connections, streams and response size, in alternating rounds (h2load, ipcbench, ...)
# (the order flips every round) so drift hits both; prints every round and the median ratio ipcbench / h2load.
# The origin runs on core 1, each client on core 0. Traffic: 127.0.0.1 only.
# Needs: h2load (apt-get install nghttp2-client), a release build of ipcbench.
# Knobs: CONNECTIONS (4), STREAMS (8), RESPONSE_BYTES (1024), SECONDS_PER_RUN (3), ROUNDS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${IPCBENCH:-target/release/ipcbench}
[ -x "$bin" ] || cargo build --release -p ipcbench
command -v h2load >/dev/null || { echo "h2load is not installed (apt-get install nghttp2-client)" >&2; exit 2; }
connections=${CONNECTIONS:-4}
streams=${STREAMS:-8}
bytes=${RESPONSE_BYTES:-1024}
seconds=${SECONDS_PER_RUN:-3}
rounds=${ROUNDS:-5}
out=$(mktemp -d)

taskset -c 1 "$bin" http-origin --listen 127.0.0.1:0 --response-bytes "$bytes" >"$out/origin.log" 2>&1 &
origin=$!
trap 'kill "$origin" 2>/dev/null || true; wait "$origin" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 50); do
    grep -q "listening on" "$out/origin.log" && break
    sleep 0.1
done
address=$(awk '/listening on/ {print $3}' "$out/origin.log")
[ -n "$address" ] || { echo "the origin did not start: $(cat "$out/origin.log")" >&2; exit 1; }
url="http://$address/obj/$bytes/h2load"
echo "origin $address; $connections connections x $streams streams, $bytes-byte responses, ${seconds}s per run"

run_h2load() {
    # -D: measure for a duration; --warm-up-time: discarded first; -t 1: one thread like ours.
    taskset -c 0 h2load -c "$connections" -m "$streams" -t 1 --warm-up-time=500ms -D "$seconds" "$url" 2>&1 |
        awk '/^finished in/ {gsub(",", "", $4); print $4}'
}
run_ipcbench() {
    taskset -c 0 "$bin" http-load --target "$address" --protocol h2 --connections "$connections" \
        --streams "$streams" --response-bytes "$bytes" --warmup 500ms --duration "${seconds}s" |
        python3 -c 'import json, sys; print("%.1f" % json.load(sys.stdin)["requests_per_s"])'
}

ratios=()
for round in $(seq "$rounds"); do
    # Odd rounds run h2load first, even rounds ipcbench first, so a drifting load favours neither.
    if [ $((round % 2)) = 1 ]; then
        h2=$(run_h2load)
        ours=$(run_ipcbench)
    else
        ours=$(run_ipcbench)
        h2=$(run_h2load)
    fi
    ratio=$(python3 -c "print('%.3f' % ($ours / $h2))")
    ratios+=("$ratio")
    echo "round $round: h2load $h2 req/s, ipcbench $ours req/s, ratio $ratio"
done
python3 -c "import statistics, sys; print('median ratio ipcbench / h2load: %.3f' % statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}"
