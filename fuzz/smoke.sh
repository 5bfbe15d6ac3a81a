#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30), one after the other.
# Used by CI as a short smoke run; exits non-zero if any target crashed, leaked, hung or ran
# out of memory (the crashing input is left in fuzz/artifacts/<target>/).
#
#   fuzz/smoke.sh [SECONDS] [TARGET...]
#
# Needs only a stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the nightly-only
# sanitizer flags. Installs cargo-fuzz from crates.io if it is missing, and (re)creates the
# seed corpora with seeds.sh first.
set -uo pipefail

SECONDS_EACH="${1:-30}"
shift || true
FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz || cargo install cargo-fuzz || {
        echo "smoke: could not install cargo-fuzz" >&2
        exit 1
    }
fi

./seeds.sh || { echo "smoke: seeds.sh failed" >&2; exit 1; }

echo "smoke: building the fuzz targets" >&2
cargo fuzz build || { echo "smoke: cargo fuzz build failed" >&2; exit 1; }

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

failed=()
for t in "${targets[@]}"; do
    echo "smoke: fuzzing $t for ${SECONDS_EACH}s" >&2
    log="$(mktemp)"
    # -timeout: one input taking longer than this is reported as a hang (a failure).
    if cargo fuzz run "$t" -- -max_total_time="$SECONDS_EACH" -timeout=60 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units)' "$log" | sed "s/^/smoke: $t: /" >&2
    else
        echo "smoke: $t FAILED; end of its log:" >&2
        tail -n 60 "$log" >&2
        failed+=("$t")
    fi
    rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "smoke: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "smoke: all ${#targets[@]} fuzz targets ran ${SECONDS_EACH}s each without a crash" >&2
exit 0
