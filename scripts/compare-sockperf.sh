#!/usr/bin/env bash
# 64-byte TCP ping-pong p50 round trip: sockperf vs ipcbench, same cores, same sitting.
# Alternates the two tools (sockperf, ipcbench, sockperf) so drift hits both; prints one line
# per placement. Needs: sockperf (apt-get install sockperf), a release build of ipcbench.
# Traffic: 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${IPCBENCH:-target/release/ipcbench}
[ -x "$bin" ] || cargo build --release -p ipcbench
command -v sockperf >/dev/null || { echo "sockperf is not installed (apt-get install sockperf)" >&2; exit 2; }
port=11311
seconds=${SECONDS_PER_RUN:-5}
out=$(mktemp -d)
trap 'pkill -f "sockperf server --tcp -i 127.0.0.1 -p $port" 2>/dev/null || true; rm -rf "$out"' EXIT

sockperf_p50() { # client_core server_core -> p50 round trip in us
    taskset -c "$2" sockperf server --tcp -i 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    local server=$!
    sleep 0.5
    taskset -c "$1" sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" -m 64 -t "$seconds" --full-rtt 2>&1 |
        awk '/percentile 50.000/ {print $NF}'
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}

for placement in "0 1" "0 0"; do
    set -- $placement
    a=$(sockperf_p50 "$1" "$2")
    "$bin" run bench-configs/tcp-64-check.toml --out "$out/run-$1-$2" >/dev/null 2>&1
    b=$(sockperf_p50 "$1" "$2")
    label=$([ "$1" = "$2" ] && echo same-core || echo cross-core)
    ipc=$(python3 - "$out/run-$1-$2/run.json" "$1" "$2" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
case = next(c for c in record["cases"] if c["cores"]["client"] == int(sys.argv[2]) and c["cores"]["server"] == int(sys.argv[3]))
print("%.2f" % (case["summary"]["latency_ns"]["p50"] / 1000))
PY
)
    python3 - "$label $1/$2" "$a" "$b" "$ipc" <<'PY'
import sys
label, a, b, ipc = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ref = (a + b) / 2
print(f"{label}: sockperf p50 RTT {a:.2f} / {b:.2f} us (mean {ref:.2f}), ipcbench p50 {ipc:.2f} us, ratio {ipc / ref:.3f}")
PY
done
