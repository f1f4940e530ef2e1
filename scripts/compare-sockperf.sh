#!/usr/bin/env bash
# 64-byte TCP ping-pong p50 round trip: sockperf vs ipcbench, same cores, same sitting.
# Alternates the two tools (sockperf, ipcbench, sockperf) so drift hits both; prints one line
# per placement. Needs: sockperf (apt-get install sockperf), a release build of ipcbench.
#
#   scripts/compare-sockperf.sh          loopback (127.0.0.1), both placements
#   scripts/compare-sockperf.sh netns    across two network namespaces joined by a veth pair:
#                                        sockperf's server and an `ipcbench serve` agent in one
#                                        namespace, the clients in this one; ipcbench runs the
#                                        pingpong with `peer` = the agent (needs root and ip)
#
# Traffic: 127.0.0.1, or the veth pair 198.18.0.1 <-> 198.18.0.2 that the netns mode makes and
# removes (RFC 2544's benchmarking range).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${IPCBENCH:-target/release/ipcbench}
[ -x "$bin" ] || cargo build --release -p ipcbench
command -v sockperf >/dev/null || { echo "sockperf is not installed (apt-get install sockperf)" >&2; exit 2; }
mode=${1:-loopback}
port=11311
seconds=${SECONDS_PER_RUN:-5}
out=$(mktemp -d)
pids=()
ns=""
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
    rm -rf "$out"
}
trap cleanup EXIT

p50_of() { # run.json client_core server_core -> p50 in us
    python3 - "$@" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
case = next(c for c in record["cases"] if c["cores"]["client"] == int(sys.argv[2]) and c["cores"]["server"] == int(sys.argv[3]))
print("%.2f" % (case["summary"]["latency_ns"]["p50"] / 1000))
PY
}

ratio_line() { # label sockperf_a sockperf_b ipcbench
    python3 - "$@" <<'PY'
import sys
label, a, b, ipc = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ref = (a + b) / 2
print(f"{label}: sockperf p50 RTT {a:.2f} / {b:.2f} us (mean {ref:.2f}), ipcbench p50 {ipc:.2f} us, ratio {ipc / ref:.3f}")
PY
}

# sockperf_p50 CLIENT_CORE SERVER_CORE IP [NAMESPACE]: p50 round trip in us.
sockperf_p50() {
    local wrap=()
    [ -n "${4:-}" ] && wrap=(ip netns exec "$4")
    "${wrap[@]}" taskset -c "$2" sockperf server --tcp -i "$3" -p "$port" >/dev/null 2>&1 &
    local server=$!
    sleep 0.5
    taskset -c "$1" sockperf ping-pong --tcp -i "$3" -p "$port" -m 64 -t "$seconds" --full-rtt 2>&1 |
        awk '/percentile 50.000/ {print $NF}'
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}

if [ "$mode" = loopback ]; then
    for placement in "0 1" "0 0"; do
        set -- $placement
        a=$(sockperf_p50 "$1" "$2" 127.0.0.1)
        "$bin" run bench-configs/tcp-64-check.toml --out "$out/run-$1-$2" >/dev/null 2>&1
        b=$(sockperf_p50 "$1" "$2" 127.0.0.1)
        label=$([ "$1" = "$2" ] && echo same-core || echo cross-core)
        ratio_line "$label $1/$2" "$a" "$b" "$(p50_of "$out/run-$1-$2/run.json" "$1" "$2")"
    done
    exit 0
fi
[ "$mode" = netns ] || { echo "unknown mode \`$mode\`; use loopback (default) or netns" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "the netns mode needs root (it makes a network namespace)" >&2; exit 2; }
command -v ip >/dev/null || { echo "ip is not installed (apt-get install iproute2)" >&2; exit 2; }

ns="ipcb-sockperf-$$"
host_if="ibsp$$h"
peer_if="ibsp$$n"
ip netns add "$ns"
ip link add "$host_if" type veth peer name "$peer_if" netns "$ns"
ip addr add 198.18.0.1/30 dev "$host_if"
ip link set "$host_if" up
ip -n "$ns" addr add 198.18.0.2/30 dev "$peer_if"
ip -n "$ns" link set "$peer_if" up
ip -n "$ns" link set lo up

# The agent in the namespace; its first stdout line names its port.
ip netns exec "$ns" "$bin" serve --listen 198.18.0.2:0 >"$out/agent.out" 2>"$out/agent.err" &
pids+=($!)
for _ in $(seq 100); do
    grep -q listening "$out/agent.out" 2>/dev/null && break
    sleep 0.1
done
agent=$(awk '/listening/ {print $NF; exit}' "$out/agent.out")
[ -n "$agent" ] || { echo "the agent did not start: $(cat "$out/agent.err")" >&2; exit 1; }
a=$(sockperf_p50 0 1 198.18.0.2 "$ns")
"$bin" run bench-configs/tcp-64-check.toml --set "peer=$agent" --set "cores=[0, 1]" --out "$out/run-netns" >/dev/null 2>&1
b=$(sockperf_p50 0 1 198.18.0.2 "$ns")
ratio_line "netns cross-core 0/1 (veth 198.18.0.1 -> 198.18.0.2)" "$a" "$b" "$(p50_of "$out/run-netns/run.json" 0 1)"
