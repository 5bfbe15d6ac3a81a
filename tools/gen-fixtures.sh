#!/usr/bin/env bash
# Generates the format test vectors in fixtures/v1, or with --verify checks that the
# committed vectors are exactly what the current code generates.
#   tools/gen-fixtures.sh            # regenerate (commit the result with a format change)
#   tools/gen-fixtures.sh --verify   # fail if fixtures/ is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--verify" ]]; then
  cargo run --quiet --example gen_fixtures -- --verify fixtures/v1
else
  cargo run --quiet --example gen_fixtures -- fixtures/v1
fi
