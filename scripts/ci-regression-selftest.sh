#!/usr/bin/env bash
# The regression gate on its own known answers (the `regress` step of .ci/run), release build:
#   - statistics against hand-computed values (Mann-Whitney U, exact and normal p-values,
#     bootstrap coverage) and compare on hand-built records (identical runs pass, a 30% slower
#     p50 regresses and is named with its size, noise without a change passes, different
#     machines are refused, confirmation keeps only what shows again);
#   - the binary end to end on a tiny null/inproc plan: an A/A run through `ipcbench ci` passes,
#     the same plan with a 10x slowdown injected via delay_ns fails and names the cases, a run
#     compared with itself exits 0, malformed files exit 2.
# Takes seconds once built. The figures on the real CI plan come from scripts/gate-known-answers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked -p ipcbench-record --test stats
cargo test --release --locked -p ipcbench-gate --test compare --test export
cargo test --release --locked -p ipcbench --test gate
