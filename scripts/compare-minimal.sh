#!/usr/bin/env bash
# ipcbench against an independent minimal loop (scripts/minimal/loop.c) doing the same work on
# the same cores: cross-core pingpong p50 (tcp, uds, pipe at 64 B; shm spin at 8 B and 64 B)
# and stream bytes/s (tcp, uds, pipe at 64 KiB). For every case and round the two run back to
# back, in alternating order (loop first in odd rounds, ipcbench first in even ones), so the
# drift of this VM hits both; ROUNDS (default 5) rounds, and the median ratio with its range.
#
# Printed per case: the minimal loop's and ipcbench's medians, the ratio (pingpong: ipcbench
# p50 / loop p50, at most 1.10 or 1.20 for shm is the target; stream: ipcbench bytes/s / loop
# bytes/s, at least 0.90), ipcbench's own `overhead_vs_bare` from the same runs (taken the
# same way round: p50 / bare p50, or bytes/s / bare bytes/s), and whether the two agree
# within 10%.
#
# Needs: cc (gcc or clang), python3, a release build of ipcbench. Traffic: 127.0.0.1 only.
# CASES="pingpong:tcp:64 stream:pipe:65536 ..." picks cases; CLIENT_CORE / SERVER_CORE cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${IPCBENCH:-target/release/ipcbench}
[ -x "$bin" ] || cargo build --release -p ipcbench
command -v cc >/dev/null || { echo "no C compiler: apt-get install gcc" >&2; exit 2; }
rounds=${ROUNDS:-5}
client_core=${CLIENT_CORE:-0}
server_core=${SERVER_CORE:-1}
seconds=${SECONDS_PER_RUN:-1}
total=${STREAM_BYTES:-268435456}
cases=${CASES:-"pingpong:tcp:64 pingpong:uds:64 pingpong:pipe:64 pingpong:shm:8 pingpong:shm:64 stream:tcp:65536 stream:uds:65536 stream:pipe:65536"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cc -O2 -Wall -o "$out/loop" scripts/minimal/loop.c

plan() { # kind transport size -> a plan file for that one case
    local kind=$1 transport=$2 size=$3 file="$out/$1-$2-$3.toml"
    {
        echo "name = \"minimal-$kind-$transport-$size\""
        echo "repetitions = 1"
        echo "warmup = \"100ms\""
        echo "cores = [$client_core, $server_core]"
        echo "[[scenario]]"
        echo "kind = \"$kind\""
        echo "transports = [\"$transport\"]"
        echo "message_bytes = [$size]"
        if [ "$kind" = pingpong ]; then echo "duration = \"${seconds}s\""; else echo "total_bytes = $total"; fi
        if [ "$transport" = shm ]; then printf '[transport.shm]\nwait = ["spin"]\n'; fi
    } > "$file"
    echo "$file"
}

minimal() { # kind transport size -> the loop's figure
    local arg=$seconds result
    [ "$1" = stream ] && arg=$total
    # Into a variable first: a parser started alongside (a pipe) would compete for the cores
    # while the loop measures.
    result=$("$out/loop" "$1" "$2" "$3" "$arg" "$client_core" "$server_core")
    python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d.get("p50_ns", d.get("bytes_per_s")))' "$result"
}

ipcbench() { # kind transport size round -> "figure overhead_vs_bare"
    local dir="$out/run-$1-$2-$3-$4"
    "$bin" run "$(plan "$1" "$2" "$3")" --out "$dir" >/dev/null 2>&1 || { echo "ipcbench failed: $dir" >&2; exit 1; }
    python3 - "$dir/run.json" <<'PY'
import json, sys
case = json.load(open(sys.argv[1]))["cases"][0]
s = case["summary"]
if case["scenario"] == "pingpong":
    print(s["latency_ns"]["p50"], s["overhead_vs_bare"])
else:
    print(s["bytes_per_s"], s["overhead_vs_bare"])
PY
}

: > "$out/rows"
for ((round = 1; round <= rounds; round++)); do
    for case in $cases; do
        IFS=: read -r kind transport size <<< "$case"
        if ((round % 2)); then
            loop=$(minimal "$kind" "$transport" "$size")
            ours=$(ipcbench "$kind" "$transport" "$size" "$round")
        else
            ours=$(ipcbench "$kind" "$transport" "$size" "$round")
            loop=$(minimal "$kind" "$transport" "$size")
        fi
        echo "$case $round $loop $ours" | tee -a "$out/rows"
    done
done

python3 - "$out/rows" "$client_core" "$server_core" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    case, _round, loop, ours, bare = line.split()
    rows.setdefault(case, []).append((float(loop), float(ours), float(bare)))
print(f"\nclient core {sys.argv[2]}, server core {sys.argv[3]}, {max(len(v) for v in rows.values())} alternating rounds, medians (range):")
def fmt(xs, unit):
    m = statistics.median(xs)
    if unit == "ns":
        return f"{m / 1000:.2f} us ({min(xs) / 1000:.2f}-{max(xs) / 1000:.2f})" if m >= 1000 else f"{m:.0f} ns ({min(xs):.0f}-{max(xs):.0f})"
    return f"{m / 1e9:.2f} GB/s ({min(xs) / 1e9:.2f}-{max(xs) / 1e9:.2f})"
for case, vals in rows.items():
    kind, transport, size = case.split(":")
    unit = "ns" if kind == "pingpong" else "B/s"
    loop = [v[0] for v in vals]
    ours = [v[1] for v in vals]
    ratios = [o / l for l, o, _ in vals]
    # overhead_vs_bare the same way round as the ratio: ipcbench / bare for latency,
    # ipcbench bytes/s / bare bytes/s = 1 / overhead for throughput.
    own = [b if kind == "pingpong" else 1 / b for _, _, b in vals]
    r, o = statistics.median(ratios), statistics.median(own)
    if kind == "pingpong":
        target = 1.20 if transport == "shm" else 1.10
        verdict = "ok" if r <= target else f"above {target:.2f}"
    else:
        target = 0.90
        verdict = "ok" if r >= target else f"below {target:.2f}"
    agree = "agree" if abs(o / r - 1) <= 0.10 else "DIFFER by more than 10%"
    print(f"{kind} {transport} {size} B: loop {fmt(loop, unit)}, ipcbench {fmt(ours, unit)}, "
          f"ratio {r:.3f} ({min(ratios):.3f}-{max(ratios):.3f}) [{verdict}]; "
          f"ipcbench's own vs bare {o:.3f} ({min(own):.3f}-{max(own):.3f}): {agree}")
PY
