#!/usr/bin/env bash
# ipcbench between two machines: the server side of every case on an agent on host B, the
# measuring side here on host A, over tcp.
#
# On host B (the agent; pick the address of the interface host A reaches, never 0.0.0.0 by
# accident, and a secret both hosts share, e.g. `head -c 32 /dev/urandom | base64 > secret`):
#
#     ipcbench serve --listen B_IP:7100 --token-file secret [--max-connections 1000 --max-duration 60s]
#
# On host A (this script; same ipcbench version as B, or the handshake refuses with exit 2):
#
#     scripts/two-hosts.sh B_IP:7100 secret [OUT_DIR]
#
# It runs bench-configs/two-hosts.toml (pingpong and stream over a size sweep, rpc over windows,
# a load case) with `--set peer=B_IP:7100`, and prints where run.json and the report are;
# REPETITIONS and DURATION override the plan's. Both machines'
# manifests are in the record (`environment` for A, `agents` for B); the gate refuses to compare
# it with a run whose machines differ. GENERATORS="C_IP:7100 D_IP:7100" (agents on more hosts)
# runs the load case's clients there (`generators`, one generator process per agent) instead of
# here; they must reach B too, as its server serves them. Remote cases run over tcp only; add
# [transport.tcp] options as in any plan. Round trips only: no figure needs the two clocks to
# agree. The measuring side listens on A's address on the route to B, and B's peer dials it, so
# a firewall must let B reach A's ephemeral ports as well as A reach B:7100.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
agent=$1
token=${2:-}
out=${3:-}
bin=${IPCBENCH:-target/release/ipcbench}
[ -x "$bin" ] || cargo build --release -p ipcbench
args=(run bench-configs/two-hosts.toml --set "peer=$agent")
[ -n "$token" ] && args+=(--token-file "$token")
[ -n "$out" ] && args+=(--out "$out")
[ -n "${REPETITIONS:-}" ] && args+=(--repetitions "$REPETITIONS")
[ -n "${DURATION:-}" ] && args+=(--duration "$DURATION")
if [ -n "${GENERATORS:-}" ]; then
    # The load case is the plan's fourth [[scenario]] (index 3).
    list=$(printf '"%s",' $GENERATORS)
    args+=(--set "scenario.3.generators=[${list%,}]")
fi
"$bin" "${args[@]}"
