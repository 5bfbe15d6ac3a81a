#!/usr/bin/env bash
# (Re)creates the seed corpora of every fuzz target: fuzz/corpus/<target>/seed-*.
#
#   fuzz/seeds.sh [CORPUS_DIR]      (default: fuzz/corpus)
#
# Two sources, both built from this checkout:
#  - examples/gen_seeds.rs (this crate) writes small .rsrec files with every record type,
#    index blocks, closed / unclosed / torn / damaged variants, their headers, records and
#    payloads, and encoded frames for the codec targets;
#  - the `rsrec` binary itself imports tiny 16-bit PNG folders (made here with python3's
#    standard library) with each depth codec, so the reader also starts from files exactly
#    as the CLI writes them. Skipped with a note if python3 is missing.
# Files the fuzzer added to the corpus are kept; seeds are overwritten.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
CORPUS="${1:-$FUZZ_DIR/corpus}"
mkdir -p "$CORPUS"
CORPUS="$(cd "$CORPUS" && pwd)"

echo "seeds: building the seed generator" >&2
(cd "$FUZZ_DIR" && cargo build --quiet --release --example gen_seeds)
"$FUZZ_DIR/target/release/examples/gen_seeds" seeds "$CORPUS"

echo "seeds: building the rsrec binary" >&2
(cd "$ROOT" && cargo build --quiet --bin rsrec)
RSREC="$ROOT/target/debug/rsrec"

# The bag reader starts from a genuine librealsense .bag (LZ4 chunks) and its first 64 KiB
# (header and chunks, no index), from the real data beside the checkout when it is there.
BAG_DIR="${RSREC_DATA_DIR:-$ROOT/../shared/data}/d435-librealsense-bag"
mkdir -p "$CORPUS/bag"
bag="$(ls "$BAG_DIR"/*.bag 2>/dev/null | head -n 1 || true)"
if [ -n "$bag" ]; then
    cp "$bag" "$CORPUS/bag/seed-librealsense"
    head -c 65536 "$bag" > "$CORPUS/bag/seed-librealsense-head"
else
    echo "seeds: no real .bag in $BAG_DIR; the bag target starts from an empty corpus" >&2
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "seeds: python3 not found; skipping the seeds imported with the rsrec binary" >&2
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/pngs/depth"
python3 - "$TMP/pngs/depth" <<'PY'
import os, struct, sys, zlib

def png16(path, w, h, vals):
    rows = b"".join(
        b"\x00" + b"".join(struct.pack(">H", vals[y * w + x]) for x in range(w))
        for y in range(h)
    )
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)

w, h = 12, 9
for n in range(3):
    vals = [0 if (i * 5 + n) % 7 == 0 else (65535 if i == 40 else 500 + 3 * i + 11 * n)
            for i in range(w * h)]
    png16(os.path.join(sys.argv[1], f"{n}.png"), w, h, vals)
PY
for codec in raw lz4-planes zstd-planes:1 med-rans grad-rans grad-rans32; do
    name="import-${codec%%:*}"
    "$RSREC" import "$TMP/pngs" --fps 30 --out "$TMP/out" --name "$name" \
        --depth-codec "$codec" --force --quiet >/dev/null
    cp "$TMP/out/$name.rsrec" "$CORPUS/reader/seed-$name"
done
# The same file with its last 10 bytes torn off (footer gone: opens by scanning).
f="$CORPUS/reader/seed-import-lz4-planes"
head -c "$(( $(stat -c %s "$f") - 10 ))" "$f" > "$CORPUS/reader/seed-import-lz4-planes-torn"
echo "seeds: corpora under $CORPUS" >&2
