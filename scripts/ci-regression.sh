#!/usr/bin/env bash
# The regression-gate job: copy it into your CI (docs/ci-gate.md shows GitHub Actions examples).
#
# Two modes, both exiting 1 only for confirmed regressions (0: none, 2: bad input):
#
# - Paired (hosted runners, any machine): AGAINST=<old ipcbench binary>, or BASE_REF=<commit> to
#   build that commit's binary in a git worktree first. `ipcbench ci --against` runs every case
#   round by round with the old binary and this one, back to back on the same cores, and judges
#   the per-round ratios, so load that drifts during the job hits both sides alike.
# - Baseline (a dedicated runner): compares with the committed baseline run.json, recorded on
#   this same machine.
#
# The Markdown summary goes to $OUT/summary.md and, under GitHub Actions, to the step summary.
#
#   scripts/ci-regression.sh [extra `ipcbench ci` flags, e.g. --threshold p99=0.4 --confirm 3]
#   BASE_REF=origin/main scripts/ci-regression.sh        # paired against main's build
#
# Environment (all optional):
#   IPCBENCH   the ipcbench binary (default: `cargo build --release` and use it)
#   AGAINST    paired mode: the old binary to run against
#   BASE_REF   paired mode: a commit to build the old binary from (in the worktree BASE_DIR,
#              default ../ipcbench-base, with its own target folder); ignored with AGAINST
#   ROUNDS     paired mode: rounds per case (default 10)
#   BASELINE   baseline mode: the baseline run.json (default: results/baseline/run.json)
#   CONFIG     the plan (default: bench-configs/ci.toml)
#   OUT        the results folder (default: results/ci-<UTC time>)
#   SETTLE     baseline mode, 1 (default): run the plan once, discarded, before the measured run;
#              0: do not. The first run after a machine sat idle can have calmer same-core tails
#              than the runs after it (docs/ci-gate.md): record the baseline the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE=${BASELINE:-results/baseline/run.json}
CONFIG=${CONFIG:-bench-configs/ci.toml}
OUT=${OUT:-results/ci-$(date -u +%Y%m%dT%H%M%SZ)}

if [[ -z "${IPCBENCH:-}" ]]; then
    cargo build --release --locked -p ipcbench
    IPCBENCH="${CARGO_TARGET_DIR:-target}/release/ipcbench"
fi

if [[ -z "${AGAINST:-}" && -n "${BASE_REF:-}" ]]; then
    BASE_DIR=${BASE_DIR:-../ipcbench-base}
    if [[ ! -d "$BASE_DIR" ]]; then
        git worktree add --detach "$BASE_DIR" "$BASE_REF"
    fi
    (cd "$BASE_DIR" && git checkout --quiet --detach "$BASE_REF" \
        && CARGO_TARGET_DIR="$PWD/target" cargo build --release --locked -p ipcbench)
    AGAINST="$BASE_DIR/target/release/ipcbench"
fi

outputs=(--markdown "$OUT/summary.md" --json "$OUT/comparison.json" --bmf "$OUT/bmf.json"
    --github-benchmark "$OUT/github-benchmark-smaller.json"
    --github-benchmark-bigger "$OUT/github-benchmark-bigger.json")
# The exports and the comparison go next to the run's folder until it exists.
mkdir -p "$(dirname "$OUT")"

status=0
if [[ -n "${AGAINST:-}" ]]; then
    "$IPCBENCH" ci --against "$AGAINST" --rounds "${ROUNDS:-10}" "$CONFIG" --out "$OUT" "${outputs[@]}" "$@" \
        || status=$?
else
    if [[ "${SETTLE:-1}" != 0 ]]; then
        "$IPCBENCH" run "$CONFIG" --out "$OUT/settle" >/dev/null
    fi
    "$IPCBENCH" ci --baseline "$BASELINE" "$CONFIG" --out "$OUT" "${outputs[@]}" "$@" || status=$?
fi

if [[ -n "${GITHUB_STEP_SUMMARY:-}" && -f "$OUT/summary.md" ]]; then
    cat "$OUT/summary.md" >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
