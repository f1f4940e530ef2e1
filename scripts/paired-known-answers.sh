#!/usr/bin/env bash
# The paired gate's known answers on this machine (issue 18, item 4):
#   1. A/A: N_AA paired runs (`ipcbench ci --against`) of the CI plan with the same binary on
#      both sides (a copy of it as the "old" one); every run should pass (exit 0).
#   2. Injected slowdown: N_SLOW paired runs with `--set transport.inproc.delay_ns=D` and
#      `--set transport.null.delay_ns=E` on the new side only, sized from the first A/A run so
#      that the same-core 64-byte `inproc` case gets SLOWDOWN (20%) slower (it sends twice per
#      round trip, and its microseconds take a delay linearly); `null`'s ~50 ns cannot be
#      slowed by only 20% (the busy-wait's own clock reads add ~40 ns), so it just gets E =
#      SLOWDOWN x p50. Every run should fail (exit 1) and name both cases.
#   3. Sensitivity: per metric, the smallest change the paired gate could have detected (median
#      over cases and A/A runs) beside what the unpaired gate could on the same trials.
# Prints the counts and the table; exits 0 when every answer was the expected one, 1 otherwise.
#
#   scripts/paired-known-answers.sh            # the ci plan as written (a paired run of all 36
#                                              # cases x 10 rounds x 2 sides takes ~20-25 min)
#   scripts/paired-known-answers.sh --quick    # 50 ms warm-up, 150 ms phases instead
#
# Environment (all optional): IPCBENCH (binary; default: cargo build --release), CONFIG
# (default bench-configs/ci.toml), N_AA (10), N_SLOW (10), SLOWDOWN (0.2), ROUNDS (10),
# OUT (results folder). Needs python3 to read the JSON records.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${CONFIG:-bench-configs/ci.toml}
N_AA=${N_AA:-10}
N_SLOW=${N_SLOW:-10}
SLOWDOWN=${SLOWDOWN:-0.2}
ROUNDS=${ROUNDS:-10}
OUT=${OUT:-results/paired-known-answers-$(date -u +%Y%m%dT%H%M%SZ)}
if [[ -z "${IPCBENCH:-}" ]]; then
    cargo build --release --locked -p ipcbench
    IPCBENCH="${CARGO_TARGET_DIR:-target}/release/ipcbench"
fi
mkdir -p "$OUT"
log="$OUT/log.txt"
plan="$OUT/plan.toml"
if [[ "${1:-}" == "--quick" ]]; then
    # Both sides must run the same plan, so the phases are shortened in a copy of it (a --set
    # would reach the new side only).
    sed -e 's/^warmup = .*/warmup = "50ms"/' -e 's/^duration = .*/duration = "150ms"/' "$CONFIG" >"$plan"
else
    cp "$CONFIG" "$plan"
fi
# The old side: a copy of the same binary, so A/A is exactly A/A.
old="$OUT/ipcbench-old"
cp "$IPCBENCH" "$old"

paired() { # paired NAME [extra ci flags]
    local name=$1
    shift
    local code=0
    "$IPCBENCH" ci --against "$old" "$plan" --rounds "$ROUNDS" --out "$OUT/$name" \
        --json "$OUT/$name.comparison.json" "$@" >"$OUT/$name.txt" 2>>"$log" || code=$?
    echo "$code"
}

# The keys of the regressed cases in comparison JSON $1, comma-separated.
regressed() {
    python3 - "$1" <<'PY'
import json, sys
comparison = json.load(open(sys.argv[1]))
print(",".join(c["key"] for c in comparison["cases"] if c["verdict"] == "regressed"))
PY
}

null_case="pingpong/null/64B/c0"
aa_pass=0
for i in $(seq 1 "$N_AA"); do
    code=$(paired "aa-$i")
    flagged=$(regressed "$OUT/aa-$i.comparison.json" 2>/dev/null || true)
    if [[ $code -eq 0 ]]; then aa_pass=$((aa_pass + 1)); fi
    echo "A/A $i: exit $code${flagged:+, regressed: $flagged}" | tee -a "$log"
done

p50() { # p50 of case $2 (its id) in run.json $1
    python3 - "$1" "$2" <<'PY'
import json, sys
for case in json.load(open(sys.argv[1]))["cases"]:
    if case["id"] == sys.argv[2]:
        print(case["summary"]["latency_ns"]["p50"])
        break
else:
    sys.exit(f"no case {sys.argv[2]} in {sys.argv[1]}")
PY
}
change() { # the p50 change of case key $2 in comparison JSON $1, with its interval
    python3 - "$1" "$2" <<'PY' 2>/dev/null || true
import json, sys
for case in json.load(open(sys.argv[1]))["cases"]:
    if case["key"] == sys.argv[2]:
        m = next(m for m in case["metrics"] if m["metric"] == "latency_p50_ns")
        print(f"{100 * (m['ratio'] - 1):+.1f}% [{100 * (m['ratio_ci95'][0] - 1):+.1f}%, {100 * (m['ratio_ci95'][1] - 1):+.1f}%]")
PY
}
inproc_case="pingpong/inproc/64B/c0s0"
null_p50=$(p50 "$OUT/aa-1/run.json" "$null_case")
inproc_p50=$(p50 "$OUT/aa-1/run.json" "$inproc_case")
null_delay=$(python3 -c "import math; print(max(1, math.ceil($SLOWDOWN * $null_p50)))")
inproc_delay=$(python3 -c "import math; print(max(1, math.ceil($SLOWDOWN / 2 * $inproc_p50)))")
echo "injected on the new side: --set transport.inproc.delay_ns=$inproc_delay (inproc same-core 64 B p50" \
    "$inproc_p50 ns), --set transport.null.delay_ns=$null_delay (null 64 B p50 $null_p50 ns)" | tee -a "$log"

slow_caught=0
for i in $(seq 1 "$N_SLOW"); do
    code=$(paired "slow-$i" --set "transport.inproc.delay_ns=$inproc_delay" --set "transport.null.delay_ns=$null_delay")
    json="$OUT/slow-$i.comparison.json"
    flagged=$(regressed "$json" 2>/dev/null || true)
    caught=no
    if [[ $code -eq 1 && ",$flagged," == *",$null_case,"* && ",$flagged," == *",$inproc_case,"* ]]; then
        caught=yes
        slow_caught=$((slow_caught + 1))
    fi
    echo "slowdown $i: exit $code, both caught: $caught (inproc p50 $(change "$json" "$inproc_case")," \
        "null p50 $(change "$json" "$null_case"))${flagged:+, regressed: $flagged}" | tee -a "$log"
done

echo "A/A: $aa_pass of $N_AA paired runs passed ($((N_AA - aa_pass)) with a false regression)" | tee -a "$log"
echo "slowdown of ${SLOWDOWN} on the new side: caught $slow_caught of $N_SLOW" | tee -a "$log"
python3 - "$OUT" "$N_AA" <<'PY' | tee -a "$log"
import json, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
paired, unpaired = {}, {}
for i in range(1, n + 1):
    try:
        comparison = json.load(open(f"{out}/aa-{i}.comparison.json"))
    except OSError:
        continue
    for case in comparison["cases"]:
        for m in case["metrics"]:
            if m.get("detectable") is not None:
                paired.setdefault(m["metric"], []).append(m["detectable"])
            if m.get("unpaired_detectable") is not None:
                unpaired.setdefault(m["metric"], []).append(m["unpaired_detectable"])
print("smallest detectable change over the A/A runs (median over cases and runs; same trials):")
print(f"  {'metric':<20} {'paired':>8} {'unpaired':>9}")
for metric in paired:
    u = statistics.median(unpaired[metric]) if metric in unpaired else float("nan")
    print(f"  {metric:<20} {100 * statistics.median(paired[metric]):>7.1f}% {100 * u:>8.1f}%")
PY
echo "details: $OUT (per run: <name>.txt, <name>.comparison.json, <name>/run.json)"
[[ $aa_pass -eq $N_AA && $slow_caught -eq $N_SLOW ]]
