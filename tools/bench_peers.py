#!/usr/bin/env python3
"""Codec peers for `cargo bench --bench codecs` that only exist as C libraries: JPEG XL
lossless (effort 3) and JPEG-LS, through the `imagecodecs` package.

Usage: bench_peers.py DATA_DIR SET [SET...]
Both run on one thread (`numthreads=1` for JPEG XL).
Prints one JSON object per line: {"set", "codec", "raw", "compressed", "enc_s", "dec_s"},
or {"error": "..."} if imagecodecs is missing. Times cover only the imagecodecs calls (the C
codec plus a small binding overhead), not reading the PNG files. Every frame is checked to
decode bit-exactly.
"""
import json
import re
import sys
import time
from pathlib import Path


def natural(p):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def main():
    try:
        import imagecodecs
        import numpy as np
        from PIL import Image
    except ImportError as e:  # reported loudly by the benchmark
        print(json.dumps({"error": f"{e}"}))
        return
    data = Path(sys.argv[1])
    peers = [
        ("JPEG XL lossless e3", lambda f: imagecodecs.jpegxl_encode(f, lossless=True, effort=3, numthreads=1),
         lambda b: imagecodecs.jpegxl_decode(b, numthreads=1)),
        ("JPEG-LS lossless", lambda f: imagecodecs.jpegls_encode(f), imagecodecs.jpegls_decode),
    ]
    for s in sys.argv[2:]:
        d = data / s / "depth" if (data / s / "depth").is_dir() else data / s
        frames = [np.asarray(Image.open(p)).astype(np.uint16) for p in sorted(d.glob("*.png"), key=natural)]
        raw = sum(f.nbytes for f in frames)
        for name, enc, dec in peers:
            t = time.perf_counter()
            blobs = [enc(f) for f in frames]
            enc_s = time.perf_counter() - t
            t = time.perf_counter()
            back = [dec(b) for b in blobs]
            dec_s = time.perf_counter() - t
            if not all(np.array_equal(a, b) for a, b in zip(frames, back)):
                print(json.dumps({"error": f"{name} is not lossless on {s}"}))
                continue
            print(json.dumps({"set": s, "codec": name, "raw": raw,
                              "compressed": sum(len(b) for b in blobs),
                              "enc_s": enc_s, "dec_s": dec_s}), flush=True)


if __name__ == "__main__":
    main()
