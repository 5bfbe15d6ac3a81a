#!/usr/bin/env bash
# Generates the format test vectors of the current format version in fixtures/v3, or with
# --verify checks that the committed vectors are exactly what the current code generates.
# fixtures/v1 and fixtures/v2 hold the vectors of format versions 1 and 2, frozen: files of
# an old version must stay readable (tests/it/fixtures.rs reads them all).
#   tools/gen-fixtures.sh            # regenerate (commit the result with a format change)
#   tools/gen-fixtures.sh --verify   # fail if fixtures/ is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--verify" ]]; then
  cargo run --quiet --example gen_fixtures -- --verify fixtures/v3
else
  cargo run --quiet --example gen_fixtures -- fixtures/v3
fi
