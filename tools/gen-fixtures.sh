#!/usr/bin/env bash
# Generates the format test vectors of the current format version in fixtures/v2, or with
# --verify checks that the committed vectors are exactly what the current code generates.
# fixtures/v1 holds the vectors of format version 1, frozen: files of an old version must
# stay readable (tests/it/fixtures.rs reads both).
#   tools/gen-fixtures.sh            # regenerate (commit the result with a format change)
#   tools/gen-fixtures.sh --verify   # fail if fixtures/ is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--verify" ]]; then
  cargo run --quiet --example gen_fixtures -- --verify fixtures/v2
else
  cargo run --quiet --example gen_fixtures -- fixtures/v2
fi
