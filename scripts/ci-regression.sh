#!/usr/bin/env bash
# The regression-gate job: copy it into your CI (docs/ci-gate.md shows a GitHub Actions example).
#
# Runs the CI plan, compares it with the committed baseline, re-runs the flagged cases to confirm
# them, and exits 1 only for confirmed regressions (0: none, 2: bad input such as a baseline
# recorded on another machine). The Markdown summary goes to $OUT/summary.md and, under GitHub
# Actions, to the job's step summary.
#
#   scripts/ci-regression.sh [extra `ipcbench ci` flags, e.g. --threshold p99=0.4 --confirm 3]
#
# Environment (all optional):
#   IPCBENCH   the ipcbench binary (default: `cargo build --release` and use it)
#   BASELINE   the baseline run.json (default: results/baseline/run.json)
#   CONFIG     the plan (default: bench-configs/ci.toml)
#   OUT        the results folder (default: results/ci-<UTC time>)
#   SETTLE     1 (default): run the plan once, discarded, before the measured run; 0: do not.
#              The first run after a machine sat idle can have calmer same-core tails than the
#              runs after it (docs/ci-gate.md): record the baseline the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE=${BASELINE:-results/baseline/run.json}
CONFIG=${CONFIG:-bench-configs/ci.toml}
OUT=${OUT:-results/ci-$(date -u +%Y%m%dT%H%M%SZ)}

if [[ -z "${IPCBENCH:-}" ]]; then
    cargo build --release --locked -p ipcbench
    IPCBENCH="${CARGO_TARGET_DIR:-target}/release/ipcbench"
fi

if [[ "${SETTLE:-1}" != 0 ]]; then
    "$IPCBENCH" run "$CONFIG" --out "$OUT/settle" >/dev/null
fi

status=0
"$IPCBENCH" ci --baseline "$BASELINE" "$CONFIG" --out "$OUT" --markdown "$OUT/summary.md" \
    --json "$OUT/comparison.json" --bmf "$OUT/bmf.json" \
    --github-benchmark "$OUT/github-benchmark-smaller.json" \
    --github-benchmark-bigger "$OUT/github-benchmark-bigger.json" "$@" || status=$?

if [[ -n "${GITHUB_STEP_SUMMARY:-}" && -f "$OUT/summary.md" ]]; then
    cat "$OUT/summary.md" >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
