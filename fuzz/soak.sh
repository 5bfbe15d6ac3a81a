#!/usr/bin/env bash
# The long adversarial run (the short one is in the test suite and fuzz/smoke.sh):
#   1. the mutation campaign of tests/it/adversarial.rs at SCALE times its size (bit flips
#      with and without fixed checksums, every record field and payload word set to
#      extremes, truncations; every input through the reader, verify and recover), in
#      release mode, printing its outcome table;
#   2. every fuzz target for MINUTES each.
#
#   fuzz/soak.sh [SCALE] [MINUTES]     # defaults: 50, 10 (about 2 hours on 2 cores)
#
# Exits non-zero on the first broken promise (a panic, a recovered file that fails verify,
# a fuzz crash, leak, hang or out-of-memory; the input is then in fuzz/artifacts/<target>/).
set -euo pipefail

SCALE="${1:-50}"
MINUTES="${2:-10}"
FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"

echo "soak: mutation campaign at scale $SCALE" >&2
(cd "$ROOT" && RSREC_CAMPAIGN_SCALE="$SCALE" cargo test --release --test it \
    adversarial:: -- --nocapture)

echo "soak: every fuzz target for $MINUTES min" >&2
"$FUZZ_DIR/smoke.sh" "$((MINUTES * 60))"
