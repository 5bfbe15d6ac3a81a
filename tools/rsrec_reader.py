#!/usr/bin/env python3
"""Read rsrec recordings (``.rsrec`` files, format versions 1 and 2) from Python.

Written from ``format-spec.md`` alone: no Rust, only numpy, lz4 and zstandard
(``pip install -r tools/requirements.txt``). It opens closed files in O(1) through the final
index, and unclosed files (writer killed, power lost, disk full) through the chain of index
blocks or a forward scan, exactly as the spec's §10 describes; it checks every CRC-32C it
reads and decodes the six depth codecs (raw, lz4-planes, zstd-planes, med-rans, grad-rans,
grad-rans32).

    from rsrec_reader import RsrecFile

    with RsrecFile("session/sim0.rsrec") as f:
        print(f.device["name"], [s.name for s in f.streams])
        ts = f.timestamps()              # device ms, host us, frame numbers (numpy arrays)
        depth = f.depth(10)              # np.uint16, H x W
        for frame in f:                  # every depth frame, in file order
            frame.index, frame.frame_number, frame.device_ts_ms, frame.data
        f.gaps()                         # lost frames, with the reason

    session = Session("recordings/20261122-041434")   # session.json: cameras and segments
    cam = session.camera("sim0")
    cam.frame_count(), cam.depth(1234), cam.timestamps()

Command line: ``python tools/rsrec_reader.py FILE [--json] [--check] [--frame K --out F.npy]``.
"""

import argparse
import json
import mmap
import os
import struct
import sys
from collections import namedtuple

import numpy as np

__all__ = [
    "RsrecFile",
    "Session",
    "RsrecError",
    "FrameError",
    "crc32c",
    "decode_depth",
]

# ---------------------------------------------------------------------------------------
# Constants (format-spec.md §2-§8)

MAGIC = b"\x89RSREC\r\n"
FOOTER_MAGIC = b"RSRECEND"
SYNC = b"\x1eRSR"
FORMAT_VERSION = 3
MIN_READ_VERSION = 1
PREAMBLE_LEN = 32
RECORD_HEADER_LEN = 48
FOOTER_LEN = 32
MAX_HEADER_LEN = 16 << 20
MAX_STREAMS = 64
MAX_METADATA_LEN = 8 << 20
MAX_MAP_ENTRIES = 4096
MAX_DIMENSION = 16384
MAX_DISTORTION_COEFFS = 16
# §3 "Frame-size limit of readers": the largest frame decoded unless RSREC_MAX_FRAME_PIXELS
# says otherwise; a valid payload of a few hundred bytes can declare 512 MiB of depth.
DEFAULT_MAX_FRAME_PIXELS = 1 << 25
MAX_FRAME_PIXELS_ENV = "RSREC_MAX_FRAME_PIXELS"
MAX_PAYLOAD_LEN = 1 << 30
MAX_INDEX_BLOCK_ENTRIES = 1 << 20
MAX_SECTIONS = 16384  # rsrec's cap, 64 x 256 (§6.2)
MAX_EVENT_MESSAGE = 1 << 20
NO_STREAM = 255

DEPTH_FRAME, COLOR_FRAME, IMU_BATCH, GAP, EVENT, VIDEO_SEGMENT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
HEADER_COPY = 0x07  # §5.7
FRAME_METADATA = 0x08  # §5.8 (format version 2)
INFRARED_FRAME = 0x09  # §5.9 (format version 3)
MAX_METADATA_PAIRS, MAX_METADATA_KEY = 256, 64
INDEX_BLOCK, FINAL_INDEX = 0x10, 0x11
RECORD_TYPES = {
    DEPTH_FRAME: "depth_frame",
    COLOR_FRAME: "color_frame",
    IMU_BATCH: "imu_batch",
    GAP: "gap",
    EVENT: "event",
    VIDEO_SEGMENT: "video_segment",
    HEADER_COPY: "header_copy",
    FRAME_METADATA: "frame_metadata",
    INFRARED_FRAME: "infrared_frame",
    INDEX_BLOCK: "index_block",
    FINAL_INDEX: "final_index",
}

SORTED_BY_FRAME, SORTED_BY_DEVICE_TS, SORTED_BY_HOST_TS = 0x01, 0x02, 0x04

CODECS = {0: "none", 1: "raw", 2: "lz4-planes", 3: "zstd-planes", 4: "med-rans", 5: "grad-rans",
          6: "grad-rans32"}
STREAM_KINDS = {1: "depth", 2: "color", 3: "infrared", 4: "gyro", 5: "accel"}
PIXEL_FORMATS = {
    1: "z16", 2: "rgb8", 3: "bgr8", 4: "rgba8", 5: "bgra8",
    6: "yuyv", 7: "y8", 8: "y16", 9: "motion_xyz32f",
}
DISTORTIONS = {
    0: "none", 1: "modified_brown_conrady", 2: "inverse_brown_conrady",
    3: "f_theta", 4: "brown_conrady", 5: "kannala_brandt4",
}
TS_DOMAINS = {0: "hardware_clock", 1: "system_time", 2: "global_time", 254: "synthetic", 255: "none"}
GAP_REASONS = {
    0: "unknown", 1: "queue_full", 2: "source_skipped", 3: "encoder_error",
    4: "device_disconnected", 5: "disk_full", 6: "io_error", 7: "corrupted",
    8: "host_dropped", 9: "bad_frame",
}

#: One index entry (§6.2): the final index's 32-byte layout, used for every section.
ENTRY_DTYPE = np.dtype([
    ("offset", "<u8"), ("frame_number", "<u8"), ("device_ts_ms", "<f8"), ("host_ts_us", "<i8"),
])
#: An index-block entry (§6.1).
BLOCK_ENTRY_DTYPE = np.dtype([
    ("offset", "<u8"), ("frame_number", "<u8"), ("device_ts_ms", "<f8"), ("host_ts_us", "<i8"),
    ("stream", "u1"), ("record_type", "u1"), ("reserved", "<u2"), ("payload_len", "<u4"),
])
#: An IMU sample (§5.3).
IMU_DTYPE = np.dtype([
    ("frame_number", "<u8"), ("device_ts_ms", "<f8"), ("host_ts_us", "<i8"),
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("reserved", "<u4"),
])


class RsrecError(Exception):
    """The file cannot be opened or a structure is malformed."""


class FrameError(RsrecError):
    """One record cannot be read or decoded (the rest of the file is still readable)."""


# ---------------------------------------------------------------------------------------
# CRC-32C (Appendix A). A table-driven pure-Python version for short inputs, and for long
# ones a numpy version that runs many lanes side by side and combines them with the
# "shift by n zero bytes" operator of the CRC (a 32 x 32 matrix over GF(2)). If the
# `crc32c` or `google-crc32c` package is installed, it is used instead.

def _make_tables():
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(3):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)])
    return tables


_TABLES = _make_tables()
_T0 = _TABLES[0]
_NT = [np.array(t, dtype=np.uint32) for t in _TABLES]


def _crc_update_py(crc, data):
    """Raw register update (no initial/final inversion)."""
    t = _T0
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _mat_apply(cols, v):
    """GF(2) matrix (32 column vectors) times vector `v` (an int)."""
    out = 0
    b = 0
    while v:
        if v & 1:
            out ^= cols[b]
        v >>= 1
        b += 1
    return out


def _mat_mul(a, b):
    return [_mat_apply(a, c) for c in b]


_ZERO_BYTE = [_crc_update_py(1 << b, b"\x00") for b in range(32)]
_SHIFT_CACHE = {}


def _shift_matrix(nbytes):
    """Operator advancing a raw CRC register over `nbytes` zero bytes."""
    m = _SHIFT_CACHE.get(nbytes)
    if m is not None:
        return m
    result = [1 << b for b in range(32)]
    power = _ZERO_BYTE
    n = nbytes
    while n:
        if n & 1:
            result = _mat_mul(power, result)
        n >>= 1
        if n:
            power = _mat_mul(power, power)
    if len(_SHIFT_CACHE) > 256:
        _SHIFT_CACHE.clear()
    _SHIFT_CACHE[nbytes] = result
    return result


def _mat_apply_np(cols, v):
    out = np.zeros_like(v)
    for b in range(32):
        out ^= ((v >> np.uint32(b)) & np.uint32(1)) * np.uint32(cols[b])
    return out


def _crc_raw_numpy(data):
    """Raw register of `data` from state 0, for len(data) >= 4096."""
    n = len(data)
    # About 128 words per lane: few Python-level steps, each on a long numpy vector.
    lanes = 1 << max(4, min(13, (n // 512).bit_length() - 1))
    words = n // (4 * lanes)  # 32-bit words per lane
    main = lanes * words * 4
    a = np.frombuffer(data, dtype="<u4", count=lanes * words).reshape(lanes, words)
    columns = np.ascontiguousarray(a.T)  # row i = word i of every lane
    t0, t1, t2, t3 = _NT
    s = np.zeros(lanes, dtype=np.uint32)
    m8 = np.uint32(0xFF)
    for i in range(words):
        s ^= columns[i]
        s = t3[s & m8] ^ t2[(s >> np.uint32(8)) & m8] ^ t1[(s >> np.uint32(16)) & m8] ^ t0[s >> np.uint32(24)]
    # Combine lanes pairwise: R(A || B) = Z^|B| R(A) xor R(B).
    length = words * 4
    while len(s) > 1:
        z = _shift_matrix(length)
        s = _mat_apply_np(z, s[0::2]) ^ s[1::2]
        length *= 2
    return int(s[0]), main


def _crc32c_builtin(data, crc=0):
    data = memoryview(data).cast("B")
    reg = crc ^ 0xFFFFFFFF
    n = len(data)
    if n >= 4096:
        raw, main = _crc_raw_numpy(data)
        reg = _mat_apply(_shift_matrix(main), reg) ^ raw
        reg = _crc_update_py(reg, data[main:])
    else:
        reg = _crc_update_py(reg, data)
    return reg ^ 0xFFFFFFFF


def _pick_crc():
    try:
        import crc32c as _c  # the `crc32c` package

        if _c.crc32c(b"123456789") == 0xE3069283:
            return lambda data, crc=0: _c.crc32c(bytes(data), crc), "crc32c package"
    except Exception:
        pass
    try:
        import google_crc32c as _g

        if _g.value(b"123456789") == 0xE3069283:
            return lambda data, crc=0: _g.extend(crc, bytes(data)), "google-crc32c package"
    except Exception:
        pass
    return _crc32c_builtin, "numpy"


crc32c, CRC_BACKEND = _pick_crc()
crc32c.__doc__ = "CRC-32C (Castagnoli) of `data`; pass a previous result as `crc` to continue."


# ---------------------------------------------------------------------------------------
# Byte-level helpers

class _Cursor:
    """Reads little-endian fields from `buf[pos:end]`, checking every length first."""

    def __init__(self, buf, pos, end, what):
        self.buf, self.pos, self.end, self.what = buf, pos, end, what

    def _take(self, n, field):
        if n < 0 or self.pos + n > self.end:
            raise RsrecError(
                f"{self.what}: truncated at {field} (needs {n} bytes, {self.end - self.pos} left)")
        p = self.pos
        self.pos += n
        return p

    def unpack(self, fmt, field):
        size = struct.calcsize(fmt)
        p = self._take(size, field)
        return struct.unpack_from(fmt, self.buf, p)

    def u8(self, f):
        return self.unpack("<B", f)[0]

    def u16(self, f):
        return self.unpack("<H", f)[0]

    def u32(self, f):
        return self.unpack("<I", f)[0]

    def u64(self, f):
        return self.unpack("<Q", f)[0]

    def i64(self, f):
        return self.unpack("<q", f)[0]

    def f32(self, f):
        return self.unpack("<f", f)[0]

    def f64(self, f):
        return self.unpack("<d", f)[0]

    def bytes(self, n, field):
        p = self._take(n, field)
        return bytes(self.buf[p:p + n])

    def str(self, field):
        n = self.u16(field)
        raw = self.bytes(n, field)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RsrecError(f"{self.what}: {field} is not valid UTF-8") from None

    def blob(self, cap, field):
        n = self.u32(field)
        if n > cap:
            raise RsrecError(f"{self.what}: {field} of {n} bytes exceeds the limit of {cap}")
        return self.bytes(n, field)

    def map(self, field):
        c = self.u16(field)
        if c > MAX_MAP_ENTRIES:
            raise RsrecError(f"{self.what}: {field} has {c} pairs (limit {MAX_MAP_ENTRIES})")
        return [(self.str(field + " key"), self.str(field + " value")) for _ in range(c)]

    def remaining(self):
        return self.end - self.pos


# ---------------------------------------------------------------------------------------
# Header (§2, §3)

Intrinsics = namedtuple("Intrinsics", "fx fy ppx ppy model model_name coeffs")
Extrinsics = namedtuple("Extrinsics", "to_stream rotation translation")


def stream_description(s):
    """A stream descriptor in the JSON shape rsrec uses everywhere (`rsrec info --json`,
    export's intrinsics.json, session.json): the same keys and meanings."""
    intr = None
    if s.intrinsics:
        i = s.intrinsics
        intr = {"fx": i.fx, "fy": i.fy, "ppx": i.ppx, "ppy": i.ppy, "model": i.model_name,
                "coeffs": list(i.coeffs)}
    extr = None
    if s.extrinsics:
        e = s.extrinsics
        extr = {"to_stream": e.to_stream, "rotation": list(e.rotation),
                "translation": list(e.translation)}
    return {"id": s.id, "kind": s.kind_name, "name": s.name, "width": s.width,
            "height": s.height, "format": s.format_name, "fps": s.fps,
            "depth_units": s.depth_units, "intrinsics": intr, "extrinsics": extr,
            "properties": dict(s.properties)}


class Stream(namedtuple("Stream", "id kind kind_name name width height format format_name fps "
                                   "depth_units intrinsics extrinsics properties")):
    """A stream descriptor (§3.2). `properties` is a list of (key, value) pairs."""

    def property(self, key, default=None):
        for k, v in self.properties:
            if k == key:
                return v
        return default


RecordHeader = namedtuple(
    "RecordHeader",
    "offset payload_len record_type stream codec ts_domain flags frame_number device_ts_ms "
    "host_ts_us header_crc payload_crc")
Section = namedtuple("Section", "stream record_type flags payload_bytes entries")
DepthFrame = namedtuple("DepthFrame", "index frame_number device_ts_ms host_ts_us ts_domain codec data")
# §5.9: `data` is a (height, width) uint8 array.
InfraredFrame = namedtuple("InfraredFrame",
                           "index frame_number device_ts_ms host_ts_us ts_domain codec data")
Timestamps = namedtuple("Timestamps", "device_ms host_us frame_numbers")
Gap = namedtuple("Gap", "stream first_frame last_frame count reason reason_name detail "
                        "frame_number device_ts_ms host_ts_us")
Event = namedtuple("Event", "stream kind message host_ts_us device_ts_ms")
VideoSegment = namedtuple("VideoSegment", "segment file_name codec path")
ColorFrame = namedtuple("ColorFrame", "index frame_number device_ts_ms host_ts_us segment "
                        "index_in_video video_time_us")


def _decode_header(buf, file_len):
    """Checks the preamble and header (§2) and decodes the body (§3).
    Returns (fields dict, first record offset F, preamble index pointer or None)."""
    head = bytes(buf[:min(file_len, 8)])
    if file_len < 8 and MAGIC.startswith(head):
        raise RsrecError(f"file is too short to be an rsrec file ({file_len} bytes)")
    if head != MAGIC:
        raise RsrecError("not an rsrec file (bad magic)")
    if file_len < PREAMBLE_LEN:
        raise RsrecError(f"file is too short to be an rsrec file ({file_len} bytes)")
    version, _flags, header_len, index_offset, index_crc = struct.unpack_from("<HHIQI", buf, 8)
    if not MIN_READ_VERSION <= version <= FORMAT_VERSION:
        raise RsrecError(
            f"unsupported format version {version} (this reader reads "
            f"{MIN_READ_VERSION}..{FORMAT_VERSION})")
    if header_len > MAX_HEADER_LEN:
        raise RsrecError(f"header length {header_len} exceeds the limit of {MAX_HEADER_LEN}")
    if file_len < 36 + header_len:
        raise RsrecError(f"file is too short for its header ({file_len} bytes, header {header_len})")
    body = buf[32:32 + header_len]
    expected, = struct.unpack_from("<I", buf, 32 + header_len)
    actual = crc32c(body, crc32c(buf[0:16]))
    if expected != actual:
        raise RsrecError(
            f"file header checksum mismatch (expected {expected:#010x}, computed {actual:#010x})")
    ptr = None
    if index_offset != 0 and crc32c(buf[16:24]) == index_crc:
        ptr = index_offset

    c = _Cursor(buf, 32, 32 + header_len, "header")
    h = {"version": version, "writer": c.str("writer"), "created_utc_us": c.i64("created_utc_us")}
    h["device"] = {
        "name": c.str("device name"),
        "serial": c.str("device serial"),
        "model": c.str("device model"),
        "firmware": c.str("device firmware"),
        "properties": c.map("device properties"),
    }
    n_streams = c.u8("stream_count")
    if n_streams > MAX_STREAMS:
        raise RsrecError(f"header: {n_streams} streams (limit {MAX_STREAMS})")
    streams, ids = [], set()
    for _ in range(n_streams):
        sid = c.u8("stream id")
        if sid == NO_STREAM or sid in ids:
            raise RsrecError(f"header: invalid or repeated stream id {sid}")
        ids.add(sid)
        kind = c.u8("stream kind")
        name = c.str("stream name")
        width, height = c.u32("width"), c.u32("height")
        if width > MAX_DIMENSION or height > MAX_DIMENSION:
            raise RsrecError(f"header: stream {sid} is {width}x{height} (limit {MAX_DIMENSION})")
        if kind == 1 and (width < 1 or height < 1):
            raise RsrecError(f"header: depth stream {sid} is {width}x{height}")
        fmt = c.u8("format")
        fps = c.f64("fps")
        units = c.f32("depth_units")
        intr = extr = None
        has = c.u8("has_intrinsics")
        if has not in (0, 1):
            raise RsrecError(f"header: stream {sid}: has_intrinsics is {has}")
        if has:
            fx, fy, ppx, ppy = c.unpack("<4f", "intrinsics")
            model = c.u8("distortion model")
            k = c.u8("coeff_count")
            if k > MAX_DISTORTION_COEFFS:
                raise RsrecError(f"header: stream {sid}: {k} distortion coefficients")
            coeffs = list(c.unpack(f"<{k}f", "coeffs")) if k else []
            intr = Intrinsics(fx, fy, ppx, ppy, model, DISTORTIONS.get(model, "other"), coeffs)
        has = c.u8("has_extrinsics")
        if has not in (0, 1):
            raise RsrecError(f"header: stream {sid}: has_extrinsics is {has}")
        if has:
            to = c.u8("to_stream")
            rot = list(c.unpack("<9f", "rotation"))
            t = list(c.unpack("<3f", "translation"))
            extr = Extrinsics(to, rot, t)
        props = c.map("stream properties")
        streams.append(Stream(sid, kind, STREAM_KINDS.get(kind, "other"), name, width, height,
                              fmt, PIXEL_FORMATS.get(fmt, "other"), fps, units, intr, extr, props))
    meta = c.blob(MAX_METADATA_LEN, "metadata_json")
    try:
        h["metadata_json"] = meta.decode("utf-8")
    except UnicodeDecodeError:
        raise RsrecError("header: metadata_json is not valid UTF-8") from None
    # Bytes after metadata_json up to header_len are ignored (§11).
    h["streams"] = streams
    return h, 36 + header_len, ptr


def _decode_footer(buf, file_len):
    """The final-index offset of a valid footer (§7), or None."""
    if file_len < FOOTER_LEN:
        return None
    p = file_len - FOOTER_LEN
    if bytes(buf[p + 24:p + 32]) != FOOTER_MAGIC:
        return None
    off, _count, crc = struct.unpack_from("<QQI", buf, p)
    if crc32c(buf[p:p + 16]) != crc:
        return None
    return off


def _footer_record_count(buf, file_len):
    return struct.unpack_from("<Q", buf, file_len - FOOTER_LEN + 8)[0]


# ---------------------------------------------------------------------------------------
# Depth codecs (§8)

def max_frame_pixels():
    """The frame-size limit (§3): RSREC_MAX_FRAME_PIXELS, else DEFAULT_MAX_FRAME_PIXELS."""
    v = os.environ.get(MAX_FRAME_PIXELS_ENV)
    if v is None:
        return DEFAULT_MAX_FRAME_PIXELS
    try:
        n = int(v.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise RsrecError(f"{MAX_FRAME_PIXELS_ENV}: '{v}' is not a whole number of pixels of at least 1")
    return n


def decode_depth(codec, payload, width, height):
    """Decodes a depth payload into an (height, width) uint16 array (§8)."""
    n = width * height
    limit = max_frame_pixels()
    if n > limit:
        raise FrameError(f"{width}x{height} frames are above this reader's limit of {limit} "
                         f"pixels a frame (set {MAX_FRAME_PIXELS_ENV} to read them)")
    payload = bytes(payload)
    if codec == 1:
        if len(payload) != 2 * n:
            raise FrameError(f"raw: payload of {len(payload)} bytes, expected {2 * n}")
        return np.frombuffer(payload, dtype="<u2").astype(np.uint16).reshape(height, width)
    if codec == 4:
        return decode_med_rans(payload, width, height)
    if codec == 5:
        return decode_grad_rans(payload, width, height)
    if codec == 6:
        return decode_grad_rans(payload, width, height, nstates=32)
    if codec not in (2, 3):
        raise FrameError(f"unknown codec id {codec}")
    name = CODECS[codec]
    if len(payload) < 4:
        raise FrameError(f"{name}: payload of {len(payload)} bytes has no plane length")
    hi_len, = struct.unpack_from("<I", payload, 0)
    if hi_len > len(payload) - 4:
        raise FrameError(f"{name}: high plane of {hi_len} bytes in a {len(payload)}-byte payload")
    planes = (payload[4:4 + hi_len], payload[4 + hi_len:])
    out = []
    for label, plane in zip(("high", "low"), planes):
        if codec == 2:
            import lz4.block

            # An LZ4 block expands at most ~255-fold: reject before allocating n bytes.
            if len(plane) < (n - 64) / 255:
                raise FrameError(f"lz4-planes: {label} plane of {len(plane)} bytes cannot hold {n}")
            try:
                data = lz4.block.decompress(plane, uncompressed_size=n)
            except Exception as e:
                raise FrameError(f"lz4-planes: {label} plane: {e}") from None
        else:
            import zstandard

            try:
                size = zstandard.frame_content_size(plane)
            except Exception as e:
                raise FrameError(f"zstd-planes: {label} plane: {e}") from None
            if size != n:
                raise FrameError(
                    f"zstd-planes: {label} plane declares {size} bytes, the frame has {n}")
            try:
                data = zstandard.ZstdDecompressor().decompress(plane, max_output_size=n)
            except Exception as e:
                raise FrameError(f"zstd-planes: {label} plane: {e}") from None
        if len(data) != n:
            raise FrameError(f"{name}: {label} plane decoded to {len(data)} bytes, expected {n}")
        out.append(np.frombuffer(data, dtype=np.uint8))
    hi, lo = out
    return ((hi.astype(np.uint16) << 8) | lo).reshape(height, width)


# med-rans (§8.4), grad-rans (§8.5) and grad-rans32 (§8.6): pure-Python decoders sharing the
# payload layout and the entropy coding. The entropy decoding is sequential by nature, so a 640x480 frame takes
# a few tenths of a second (med-rans: also its prediction, pixel by pixel); numpy does the
# rest (for grad-rans: the contexts, the gradient and the running sum of each row).

_MR_NCTX = 14
_MR_PROB_BITS = 11
_MR_SCALE = 1 << _MR_PROB_BITS
_MR_L = 1 << 16
_MR_NTOK = 80
_MR_THRESHOLDS = (1, 2, 4, 7, 12, 20, 40)
_MR_BUCKET = [sum(1 for t in _MR_THRESHOLDS if a >= t) for a in range(41)]


def med_rans_bound(payload):
    """The error bound a med-rans, grad-rans or grad-rans32 payload declares (§8.4.1): None if
    lossless, else ("units", N) or ("relative_ppm", P)."""
    kind, value = payload[1], struct.unpack_from("<I", payload, 2)[0]
    return None if kind == 0 else (("units", value) if kind == 1 else ("relative_ppm", value))


class _MrStream:
    """The shared part of codecs 4, 5 and 6: the fixed header (§8.4.1), the frequency tables,
    tokens and interleaved rANS states (§8.4.5, `nstates` of them), the palette and the hole
    mask (§8.4.2). Values are read with value() / values() in the order of §8.4.2."""

    def __init__(self, payload, width, height, name, nstates):
        self.name = name
        p = bytes(payload)
        n = width * height
        if len(p) < 26 + _MR_NCTX + 4 * nstates:
            raise self.bad(f"payload of {len(p)} bytes is too short")
        flags, kind = p[0], p[1]
        value, pw, ph, k, rans_len, bits_len = struct.unpack_from("<6I", p, 2)
        if flags & ~1 or kind > 2 or (kind == 0) != (value == 0):
            raise self.bad(f"bad flags {flags} or bound {kind}/{value}")
        if (pw, ph) != (width, height):
            raise self.bad(f"payload is for {pw}x{ph}, the stream is {width}x{height}")
        self.palette = bool(flags & 1)
        if (self.palette and not 1 <= k <= min(65535, n)) or (not self.palette and k != 0):
            raise self.bad(f"bad palette size {k}")
        # §8.4.5 frequency tables
        pos = 26
        tables = []
        for _ in range(_MR_NCTX):
            if pos >= len(p):
                raise self.bad("truncated tables")
            nsym = p[pos]
            pos += 1
            if nsym > _MR_NTOK:
                raise self.bad(f"table with {nsym} symbols")
            freqs = []
            for _ in range(nsym):
                v, shift = 0, 0
                while True:
                    if pos >= len(p) or shift > 14:
                        raise self.bad("bad frequency")
                    b = p[pos]
                    pos += 1
                    v |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                freqs.append(v)
            if nsym and sum(freqs) != _MR_SCALE:
                raise self.bad(f"frequencies sum to {sum(freqs)}")
            cums = [0]
            for f in freqs:
                cums.append(cums[-1] + f)
            # slot -> (token, freq, cum)
            slots = [None] * _MR_SCALE
            for t, f in enumerate(freqs):
                for s in range(cums[t], cums[t] + f):
                    slots[s] = (t, f, cums[t])
            tables.append(slots if nsym else None)
        if pos + 4 * nstates + rans_len + bits_len != len(p) or rans_len % 2:
            raise self.bad("stream lengths do not match the payload")
        self.tables = tables
        self.x = list(struct.unpack_from(f"<{nstates}I", p, pos))
        pos += 4 * nstates
        self.nstates = nstates
        self.words = p[pos:pos + rans_len]
        self.bits = p[pos + rans_len:] + bytes(5)  # zeros past the end (checked in finish)
        self.bits_len = bits_len
        self.j = self.w = self.bitpos = 0
        # §8.4.2 palette and hole mask
        self.k = k
        self.pal = np.zeros(k, dtype=np.int64)
        prev = 0
        for i, u in enumerate(self.values([0] * k)):
            prev += 1 + u
            if prev > 65535:
                raise self.bad("palette value above 65535")
            self.pal[i] = prev
        runs, total, valid = [], 0, True
        while total < n:
            r = self.value(1 if valid else 2)
            if (r == 0 and runs) or r > n - total:
                raise self.bad(f"bad run of {r} at pixel {total}")
            runs.append(r)
            total += r
            valid = not valid
        self.mask = np.repeat(np.arange(len(runs)) % 2 == 0, runs).reshape(height, width)

    def bad(self, msg):
        return FrameError(f"{self.name}: {msg}")

    def value(self, ctx):
        return self.values((ctx,))[0]

    def values(self, ctxs):
        """One value (token and extra bits) per context in `ctxs`, in order."""
        tables, x, words, bits = self.tables, self.x, self.words, self.bits
        ns, j, w, bitpos = self.nstates, self.j, self.w, self.bitpos
        out = []
        for ctx in ctxs:
            t = tables[ctx]
            if t is None:
                raise self.bad(f"symbol in unused context {ctx}")
            i = j % ns
            j += 1
            xs = x[i]
            slot = xs & (_MR_SCALE - 1)
            tok, f, c = t[slot]
            xs = f * (xs >> _MR_PROB_BITS) + slot - c
            if xs < _MR_L:
                if w + 2 > len(words):
                    raise self.bad("rANS stream too short")
                xs = (xs << 16) | words[w] | (words[w + 1] << 8)
                w += 2
            x[i] = xs
            if tok < 32:
                out.append(tok)
                continue
            kbits = (tok - 32) // 2 + 6
            nb = kbits - 2
            at = bitpos >> 3
            extra = (int.from_bytes(bits[at:at + 5], "little") >> (bitpos & 7)) & ((1 << nb) - 1)
            bitpos += nb
            out.append((1 << (kbits - 1)) | ((tok & 1) << nb) | extra)
        self.j, self.w, self.bitpos = j, w, bitpos
        return out

    def finish(self):
        """§8.4.5: every state back at 2^16, every word read, no whole unread byte of bits."""
        if self.w != len(self.words) or any(v != _MR_L for v in self.x) or \
                (self.bitpos + 7) // 8 != self.bits_len:
            raise self.bad("entropy-coded streams do not end where they should")

    def samples(self, idx):
        """The samples of the decoded indices `idx` (holes 0)."""
        idx = np.where(self.mask, idx, 0)
        out = self.pal[idx] if self.palette else idx
        return np.where(self.mask, out, 0).astype(np.uint16)


def decode_med_rans(payload, width, height):
    """Decodes a med-rans payload (§8.4) into an (height, width) uint16 array."""
    s = _MrStream(payload, width, height, "med-rans", 4)
    mask, bad = s.mask, s.bad
    # §8.4.3-8.4.4 residuals row by row
    lo, hi = (0, s.k - 1) if s.palette else (1, 65535)
    idx = np.zeros((height, width), dtype=np.int64)
    pm = [0] * (width + 2)
    pv = [0] * (width + 2)
    pz = [0] * (width + 2)
    last = 0
    for y in range(height):
        cm = [0] + mask[y].astype(int).tolist() + [0]
        cv = [0] * (width + 2)
        cz = [0] * (width + 2)
        for xx in range(1, width + 1):
            if not cm[xx]:
                continue
            va, vb = cm[xx - 1], pm[xx]
            if va and vb:
                b = pv[xx]
                act = pz[xx] + ((pz[xx - 1] + pz[xx + 1]) >> 1)
                if pm[xx - 1]:
                    act += abs(b - pv[xx - 1])
                if pm[xx + 1]:
                    act += abs(b - pv[xx + 1])
                ctx = 3 + _MR_BUCKET[min(act, 40)]
            else:
                ctx = 11 if va else (12 if vb else 13)
            z = s.value(ctx)
            cz[xx] = z
            a, c = cv[xx - 1], pv[xx - 1]
            if va and vb:
                if pm[xx - 1]:
                    mn, mx = min(a, b), max(a, b)
                    pred = mn if c >= mx else (mx if c <= mn else a + b - c)
                else:
                    pred = (a + b) >> 1
            elif va:
                pred = a
            elif vb:
                pred = pv[xx]
            elif pm[xx - 1]:
                pred = c
            elif pm[xx + 1]:
                pred = pv[xx + 1]
            else:
                pred = last
            v = pred + ((z >> 1) ^ -(z & 1))
            if not lo <= v <= hi:
                raise bad(f"pixel {y * width + xx - 1} decodes out of range")
            cv[xx] = v
            last = v
        idx[y] = cv[1:width + 1]
        pm, pv, pz = cm, cv, cz
    s.finish()
    return s.samples(idx)


_GR_THRESHOLDS = np.array(_MR_THRESHOLDS, dtype=np.int64)


def decode_grad_rans(payload, width, height, nstates=8):
    """Decodes a grad-rans payload (§8.5; with ``nstates=32`` a grad-rans32 payload, §8.6,
    which differs only in its number of rANS states) into an (height, width) uint16 array.

    Row by row: the contexts (§8.5.3) and the gradient terms g (§8.5.2) of the whole row come
    from the filled row above with numpy; the residuals of the row's valid pixels are read in
    one go; the filled row is then the running sum of g + r (r = 0 at holes), modulo 2^16."""
    if nstates not in (8, 32):
        raise ValueError(f"grad-rans has 8 rANS states, grad-rans32 32, not {nstates}")
    s = _MrStream(payload, width, height, "grad-rans" if nstates == 8 else "grad-rans32", nstates)
    mask, bad = s.mask, s.bad
    lo, hi = (0, s.k - 1) if s.palette else (1, 65535)
    filled = np.zeros((height, width), dtype=np.int64)
    up = np.zeros(width, dtype=np.uint16)            # P: the filled row above (0 above row 0)
    up_valid = np.zeros(width, dtype=bool)           # the hole mask of the row above
    up_z = np.zeros(width + 2, dtype=np.int64)       # its values z, padded: 0 at holes/edges
    diff = np.zeros(width + 1, dtype=np.int64)       # D(0..width), D(0) = D(width) = 0
    g = np.empty(width, dtype=np.uint16)
    for y in range(height):
        m = mask[y]
        # §8.5.2 gradient terms; uint16 arrays wrap modulo 2^16, int16 >> 1 is arithmetic.
        if width > 2:
            g[1:-1] = ((up[2:] - up[:-2]).view(np.int16) >> 1).view(np.uint16)
        if width > 1:
            g[-1:] = up[-1:] - up[-2:-1]
            diff[1:width] = np.abs((up[1:] - up[:-1]).view(np.int16).astype(np.int64))
        g[0] = up[0]
        # §8.5.3 contexts
        act = up_z[1:-1] + ((up_z[:-2] + up_z[2:]) >> 1) + diff[:-1] + diff[1:]
        bucket = np.searchsorted(_GR_THRESHOLDS, act, side="right")
        left = np.zeros(width, dtype=bool)
        left[1:] = m[:-1]
        ctx = np.where(left & up_valid, 3 + bucket,
                       np.where(left, 11, np.where(up_valid, 12, 13)))
        z = np.array(s.values(ctx[m].tolist()), dtype=np.int64)
        if z.size and z.max() >= 65536:
            x = int(np.flatnonzero(m)[np.argmax(z >= 65536)])
            raise bad(f"pixel {y * width + x}: residual value {int(z[z >= 65536][0])} >= 65536")
        t = g.astype(np.int64)
        t[m] += (z >> 1) ^ -(z & 1)
        row = np.cumsum(t) & 0xFFFF
        v = row[m]
        out = (v < lo) | (v > hi)
        if out.any():
            x = int(np.flatnonzero(m)[np.argmax(out)])
            raise bad(f"pixel {y * width + x} decodes out of range")
        filled[y] = row
        up = row.astype(np.uint16)
        up_valid = m
        up_z = np.zeros(width + 2, dtype=np.int64)
        up_z[1:-1][m] = z
    s.finish()
    return s.samples(filled)


# ---------------------------------------------------------------------------------------
# The file

def _sort_flags(e):
    """§6.2 sort flags of an entry array."""
    flags = 0
    if len(e) < 2:
        return SORTED_BY_FRAME | SORTED_BY_DEVICE_TS | SORTED_BY_HOST_TS
    if np.all(e["frame_number"][1:] >= e["frame_number"][:-1]):
        flags |= SORTED_BY_FRAME
    d = e["device_ts_ms"]
    if not np.isnan(d).any() and np.all(d[1:] >= d[:-1]):
        flags |= SORTED_BY_DEVICE_TS
    if np.all(e["host_ts_us"][1:] >= e["host_ts_us"][:-1]):
        flags |= SORTED_BY_HOST_TS
    return flags


class RsrecFile:
    """An open ``.rsrec`` file (memory-mapped, read-only).

    Attributes: ``version``, ``writer``, ``created_utc_us``, ``device`` (dict), ``streams``
    (list of :class:`Stream`), ``metadata_json`` (text) and ``metadata`` (parsed, or None),
    ``closed`` (the writer finished the file), ``opened_via`` (``"final_index"``,
    ``"index_blocks"`` or ``"scan"``), ``torn_tail_bytes`` (unclosed files), ``sections``
    (dict ``(stream, record_type)`` -> :class:`Section`), ``header_restored`` (the file's own
    header was damaged and its header copy, §5.7, was used).

    ``check_crc`` (default True) checks every payload CRC before decoding (§10.4).
    """

    def __init__(self, path, check_crc=True):
        self.path = os.fspath(path)
        self.check_crc = check_crc
        self._file = open(self.path, "rb")
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size == 0:
                self._buf = b""
                self._mmap = None
            else:
                self._mmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
                self._buf = self._mmap
            self.file_len = size
            self._open()
        except Exception:
            self.close()
            raise

    # -- opening (§10) ------------------------------------------------------------------

    def _header_copy(self):
        """The first intact header copy (§5.7): (header, first_record), or None."""
        buf, n = self._buf, self.file_len
        at = buf.find(SYNC, 0) if n else -1
        while at >= 0:
            try:
                h = self._header_at(at)
                if h.record_type == HEADER_COPY:
                    p = bytes(buf[at + RECORD_HEADER_LEN:at + RECORD_HEADER_LEN + h.payload_len])
                    if crc32c(p) == h.payload_crc:
                        copy, first, _ = _decode_header(p, len(p))
                        return copy, first
            except RsrecError:
                pass
            at = buf.find(SYNC, at + 1)
        return None

    def _open(self):
        buf, n = self._buf, self.file_len
        #: The file's own header was damaged and its copy (§5.7) was used.
        self.header_restored = False
        try:
            h, self.first_record, ptr = _decode_header(buf, n)
        except RsrecError:
            found = self._header_copy()
            if found is None:
                raise
            (h, self.first_record), ptr = found, None
            self.header_restored = True
        self.version = h["version"]
        self.writer = h["writer"]
        self.created_utc_us = h["created_utc_us"]
        self.device = h["device"]
        self.streams = h["streams"]
        self.metadata_json = h["metadata_json"]
        try:
            self.metadata = json.loads(self.metadata_json)
        except ValueError:
            self.metadata = None  # not JSON: allowed (§3)
        self.torn_tail_bytes = 0
        self.record_count = None
        footer = _decode_footer(buf, n)
        for cand in (ptr, footer):
            if cand is None:
                continue
            sections = self._try_final_index(cand)
            if sections is not None:
                self.sections = sections
                self.closed = True
                self.opened_via = "final_index"
                self.record_count = _footer_record_count(buf, n)
                return
        self.closed = False
        chain = self._load_chain()
        if chain is not None:
            self.opened_via = "index_blocks"
            groups, start = chain
        else:
            self.opened_via = "scan"
            groups, start = {}, self.first_record
        self.torn_tail_bytes = self._scan(start, groups)
        self.sections = {}
        for key in sorted(groups):
            lst = groups[key]
            e = np.array([x[:4] for x in lst], dtype=ENTRY_DTYPE)
            self.sections[key] = Section(key[0], key[1], _sort_flags(e), sum(x[4] for x in lst), e)

    def _header_at(self, off):
        """The record header at `off` if it is valid (§4 checks 1-5), else raises FrameError."""
        buf, n = self._buf, self.file_len
        if off < 0 or off + RECORD_HEADER_LEN > n:
            raise FrameError(f"record at offset {off}: header runs past the end of the file")
        if bytes(buf[off:off + 4]) != SYNC:
            raise FrameError(f"record at offset {off}: no record sync marker")
        (plen, rtype, stream, codec, dom, flags, fnum, dts, hts, hcrc, pcrc) = struct.unpack_from(
            "<IBBBBIQdqII", buf, off + 4)
        actual = crc32c(buf[off:off + 40])
        if actual != hcrc:
            raise FrameError(f"record at offset {off}: header checksum mismatch "
                             f"(expected {hcrc:#010x}, computed {actual:#010x})")
        if plen > MAX_PAYLOAD_LEN:
            raise FrameError(f"record at offset {off}: payload length {plen} exceeds the limit")
        if off + RECORD_HEADER_LEN + plen > n:
            raise FrameError(f"record at offset {off}: payload of {plen} bytes runs past the end "
                             f"of the file ({n} bytes)")
        return RecordHeader(off, plen, rtype, stream, codec, dom, flags, fnum, dts, hts, hcrc, pcrc)

    def _payload(self, h, check=True):
        p = h.offset + RECORD_HEADER_LEN
        data = self._buf[p:p + h.payload_len]
        if check:
            actual = crc32c(data)
            if actual != h.payload_crc:
                raise FrameError(f"record at offset {h.offset}: payload checksum mismatch "
                                 f"(expected {h.payload_crc:#010x}, computed {actual:#010x})")
        return data

    def _intact(self, off):
        try:
            h = self._header_at(off)
            self._payload(h, True)
            return h
        except FrameError:
            return None

    def _try_final_index(self, x):
        """§10.1: accept a final index at `x`, or return None."""
        try:
            if x < self.first_record:
                return None
            h = self._header_at(x)
            if h.record_type != FINAL_INDEX:
                return None
            end = x + RECORD_HEADER_LEN + h.payload_len
            if end + FOOTER_LEN != self.file_len or _decode_footer(self._buf, self.file_len) != x:
                return None
            return self._decode_final(x + RECORD_HEADER_LEN, h.payload_len)
        except (FrameError, RsrecError, struct.error):
            return None

    def _decode_final(self, start, plen):
        """§6.2 reader rules; returns sections with entries viewed in place (O(1))."""
        buf = self._buf
        if plen < 8:
            return None
        s, = struct.unpack_from("<I", buf, start)
        if s > MAX_SECTIONS or 8 + 32 * s > plen:
            return None
        sections = {}
        for i in range(s):
            st, rt, flags, _r, _r2, count, estart, pbytes = struct.unpack_from(
                "<BBBBIQQQ", buf, start + 8 + 32 * i)
            if estart < 8 + 32 * s or estart + 32 * count > plen:
                return None
            if (st, rt) in sections:
                return None
            e = np.frombuffer(buf, dtype=ENTRY_DTYPE, count=count, offset=start + estart) \
                if count else np.zeros(0, dtype=ENTRY_DTYPE)
            sections[(st, rt)] = Section(st, rt, flags, pbytes, e)
        return sections

    def _last_index_block(self):
        """§10.2 step 1: the last intact index block, searching back from the end."""
        buf, f = self._buf, self.first_record
        end = self.file_len
        while end > f:
            pos = buf.rfind(SYNC, f, end)
            if pos < 0:
                return None
            h = self._intact(pos)
            if h is not None and h.record_type == INDEX_BLOCK:
                return h
            end = pos + 3  # the marker cannot overlap itself
        return None

    def _block(self, h):
        p = h.offset + RECORD_HEADER_LEN
        if h.payload_len < 16:
            raise RsrecError("index block too short")
        prev, count = struct.unpack_from("<QI", self._buf, p)
        if count > MAX_INDEX_BLOCK_ENTRIES or h.payload_len != 16 + 40 * count:
            raise RsrecError(f"index block of {h.payload_len} bytes cannot hold {count} entries")
        e = np.frombuffer(self._buf, dtype=BLOCK_ENTRY_DTYPE, count=count, offset=p + 16)
        return prev, e

    def _load_chain(self):
        """§10.2 step 2: (groups, scan start) from the chain of index blocks, or None."""
        last = self._last_index_block()
        if last is None:
            return None
        blocks = [last]
        cur = last
        try:
            while True:
                prev, _ = self._block(cur)
                if prev == 0:
                    break
                if not self.first_record <= prev < cur.offset:
                    return None
                h = self._intact(prev)
                if h is None or h.record_type != INDEX_BLOCK:
                    return None
                blocks.append(h)
                cur = h
            groups = {}
            limit = self.first_record
            for b in reversed(blocks):
                _, e = self._block(b)
                offs = e["offset"]
                if len(offs):
                    if offs[0] < limit or np.any(offs[1:] <= offs[:-1]) or offs[-1] >= b.offset:
                        return None
                    limit = int(offs[-1]) + 1
                for row in e:
                    key = (int(row["stream"]), int(row["record_type"]))
                    groups.setdefault(key, []).append(
                        (int(row["offset"]), int(row["frame_number"]), float(row["device_ts_ms"]),
                         int(row["host_ts_us"]), int(row["payload_len"])))
        except (RsrecError, struct.error):
            return None
        return groups, last.offset + RECORD_HEADER_LEN + last.payload_len

    def _scan(self, pos, groups):
        """§10.2 step 3: walk valid record headers from `pos`; returns the torn tail length."""
        n = self.file_len
        while pos < n:
            try:
                h = self._header_at(pos)
            except FrameError:
                if n - pos == FOOTER_LEN and _decode_footer(self._buf, n) is not None:
                    return 0
                return n - pos
            if h.record_type not in (INDEX_BLOCK, FINAL_INDEX):
                groups.setdefault((h.stream, h.record_type), []).append(
                    (h.offset, h.frame_number, h.device_ts_ms, h.host_ts_us, h.payload_len))
            pos = h.offset + RECORD_HEADER_LEN + h.payload_len
        return 0

    # -- streams and sections ----------------------------------------------------------

    def stream(self, sid):
        """The descriptor of stream `sid`."""
        for s in self.streams:
            if s.id == sid:
                return s
        raise KeyError(f"no stream with id {sid}")

    def _find_kind(self, kind):
        for s in self.streams:
            if s.kind == kind:
                return s.id
        return None

    @property
    def depth_stream(self):
        """Id of the first depth stream (None if there is none)."""
        return self._find_kind(1)

    @property
    def color_stream(self):
        """Id of the first colour stream (None if there is none)."""
        return self._find_kind(2)

    def _depth_id(self, stream):
        sid = self.depth_stream if stream is None else stream
        if sid is None:
            raise RsrecError("the file has no depth stream")
        return sid

    def entries(self, stream, record_type):
        """Index entries of one (stream, record type), in file order: a numpy structured
        array with fields offset, frame_number, device_ts_ms, host_ts_us."""
        s = self.sections.get((stream, record_type))
        return s.entries if s is not None else np.zeros(0, dtype=ENTRY_DTYPE)

    def count(self, stream, record_type):
        s = self.sections.get((stream, record_type))
        return len(s.entries) if s is not None else 0

    def frame_count(self, stream=None):
        """Number of depth frames of `stream` (default: the depth stream)."""
        return self.count(self._depth_id(stream), DEPTH_FRAME)

    def __len__(self):
        return self.frame_count() if self.depth_stream is not None else 0

    def timestamps(self, stream=None, record_type=DEPTH_FRAME):
        """(device_ms float64, host_us int64, frame_numbers uint64) arrays of a stream
        (default: the depth stream's frames), from the index."""
        sid = self._depth_id(stream) if stream is None else stream
        e = self.entries(sid, record_type)
        return Timestamps(np.array(e["device_ts_ms"], dtype=np.float64),
                          np.array(e["host_ts_us"], dtype=np.int64),
                          np.array(e["frame_number"], dtype=np.uint64))

    # -- records (§10.4) ---------------------------------------------------------------

    def read_record(self, stream, record_type, i):
        """(RecordHeader, payload bytes) of record `i` of a (stream, record type), checked
        against its index entry and its payload CRC."""
        e = self.entries(stream, record_type)
        if not 0 <= i < len(e):
            raise IndexError(
                f"stream {stream}: record {i} is out of range (the stream has {len(e)})")
        ent = e[i]
        off = int(ent["offset"])
        if off < self.first_record:
            raise FrameError(f"index entry points at offset {off} inside the header")
        h = self._header_at(off)
        if (h.stream != stream or h.record_type != record_type
                or h.frame_number != int(ent["frame_number"])
                or h.host_ts_us != int(ent["host_ts_us"])):
            raise FrameError(f"index entry for stream {stream} frame {int(ent['frame_number'])} "
                             f"does not match the record at offset {off}")
        return h, bytes(self._payload(h, self.check_crc))

    def depth_frame(self, k, stream=None):
        """Depth frame `k` (position in the stream) as a :class:`DepthFrame`."""
        sid = self._depth_id(stream)
        s = self.stream(sid)
        if s.kind != 1:
            raise RsrecError(f"stream {sid} is a {s.kind_name} stream; this needs a depth stream")
        h, p = self.read_record(sid, DEPTH_FRAME, k)
        try:
            data = decode_depth(h.codec, p, s.width, s.height)
        except FrameError as e:
            raise FrameError(f"record at offset {h.offset}: {e}") from None
        return DepthFrame(k, h.frame_number, h.device_ts_ms, h.host_ts_us, h.ts_domain,
                          h.codec, data)

    @property
    def infrared_streams(self):
        """Ids of the infrared streams (§5.9), in header order."""
        return [s.id for s in self.streams if s.kind == 3]

    def infrared_count(self, stream):
        """Number of infrared frames of `stream`."""
        return self.count(stream, INFRARED_FRAME)

    def infrared_frame(self, k, stream):
        """Infrared frame `k` of `stream` as an :class:`InfraredFrame` (§5.9): the payload is
        a depth-codec frame of 16-bit samples that must all fit a byte."""
        s = self.stream(stream)
        if s.kind != 3 or s.format != 7:
            raise RsrecError(f"stream {stream} is a {s.kind_name} stream in {s.format_name}; "
                             "this needs an infrared stream in y8")
        h, p = self.read_record(stream, INFRARED_FRAME, k)
        try:
            wide = decode_depth(h.codec, p, s.width, s.height)
        except FrameError as e:
            raise FrameError(f"record at offset {h.offset}: {e}") from None
        if wide.size and int(wide.max()) > 255:
            pixel = int(np.argmax(wide.reshape(-1) > 255))
            raise FrameError(f"record at offset {h.offset}: sample {int(wide.reshape(-1)[pixel])} "
                             f"at pixel {pixel} does not fit an 8-bit image")
        return InfraredFrame(k, h.frame_number, h.device_ts_ms, h.host_ts_us, h.ts_domain,
                             h.codec, wide.astype(np.uint8))

    def depth(self, k, stream=None):
        """Depth frame `k` as a (height, width) uint16 array."""
        return self.depth_frame(k, stream).data

    def frames(self, stream=None, start=0, stop=None, step=1):
        """Depth frames `start:stop:step` in order (a generator of :class:`DepthFrame`)."""
        n = self.frame_count(stream)
        for k in range(*slice(start, stop, step).indices(n)):
            yield self.depth_frame(k, stream)

    def __iter__(self):
        return self.frames()

    # -- searching (§10.1) -------------------------------------------------------------

    def find_frame_number(self, n, stream=None, record_type=DEPTH_FRAME):
        """Position of the first record with frame number `n`, or None."""
        e = self.entries(self._depth_id(stream) if stream is None else stream, record_type)
        hits = np.nonzero(e["frame_number"] == n)[0]
        return int(hits[0]) if len(hits) else None

    def _seek(self, field, flag, value, stream, record_type):
        sid = self._depth_id(stream) if stream is None else stream
        s = self.sections.get((sid, record_type))
        if s is None:
            return 0
        col = s.entries[field]
        if s.flags & flag:
            return int(np.searchsorted(col, value, side="left"))
        hits = np.nonzero(~(col < value))[0]
        return int(hits[0]) if len(hits) else len(col)

    def seek_device_ts(self, ts_ms, stream=None, record_type=DEPTH_FRAME):
        """Position of the first record whose device timestamp is >= `ts_ms`."""
        return self._seek("device_ts_ms", SORTED_BY_DEVICE_TS, ts_ms, stream, record_type)

    def seek_host_ts(self, ts_us, stream=None, record_type=DEPTH_FRAME):
        """Position of the first record whose host timestamp is >= `ts_us`."""
        return self._seek("host_ts_us", SORTED_BY_HOST_TS, ts_us, stream, record_type)

    # -- other records (§5) ------------------------------------------------------------

    def _all(self, record_type):
        for (sid, rt) in sorted(self.sections):
            if rt == record_type:
                for i in range(self.count(sid, rt)):
                    yield self.read_record(sid, rt, i)

    def frame_metadata(self, stream=None):
        """Per-frame metadata (§5.8, format version 2) of a stream (default: the depth
        stream): a dict ``{(frame_number, host_ts_us): {key: value}}``, the key being the
        frame's number and host time (as in its frame record and ``frames()``)."""
        sid = self.depth_stream if stream is None else stream
        out = {}
        if sid is None:
            return out
        for i in range(self.count(sid, FRAME_METADATA)):
            h, p = self.read_record(sid, FRAME_METADATA, i)
            c = _Cursor(p, 0, len(p), f"frame metadata at offset {h.offset}")
            n = c.u16("count")
            if n > MAX_METADATA_PAIRS:
                raise FrameError(f"frame metadata at offset {h.offset}: {n} pairs, more than "
                                 f"{MAX_METADATA_PAIRS}")
            pairs = {}
            for _ in range(n):
                k = c.str("key")
                if not (0 < len(k) <= MAX_METADATA_KEY) or not all(
                        ch.isascii() and (ch.isalnum() or ch == "_") for ch in k):
                    raise FrameError(f"frame metadata at offset {h.offset}: bad key {k!r}")
                pairs[k] = c.i64("value")
            out[(h.frame_number, h.host_ts_us)] = pairs
        return out

    def gaps(self):
        """Every gap record (§5.4): lost frames and why."""
        out = []
        for h, p in self._all(GAP):
            c = _Cursor(p, 0, len(p), f"gap at offset {h.offset}")
            first, last, count, reason = c.u64("first"), c.u64("last"), c.u64("count"), c.u8("reason")
            detail = c.str("detail")
            out.append(Gap(h.stream, first, last, count, reason, GAP_REASONS.get(reason, "other"),
                           detail, h.frame_number, h.device_ts_ms, h.host_ts_us))
        return out

    def events(self):
        """Every event record (§5.5)."""
        out = []
        for h, p in self._all(EVENT):
            c = _Cursor(p, 0, len(p), f"event at offset {h.offset}")
            kind = c.str("kind")
            msg = c.blob(MAX_EVENT_MESSAGE, "message")
            try:
                msg = msg.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(f"event at offset {h.offset}: message is not UTF-8") from None
            out.append(Event(h.stream, kind, msg, h.host_ts_us, h.device_ts_ms))
        return out

    def video_segments(self, stream=None):
        """{segment: VideoSegment} of a colour stream (§5.6); `path` is resolved next to
        the .rsrec file."""
        sid = self.color_stream if stream is None else stream
        out = {}
        if sid is None:
            return out
        for i in range(self.count(sid, VIDEO_SEGMENT)):
            h, p = self.read_record(sid, VIDEO_SEGMENT, i)
            c = _Cursor(p, 0, len(p), f"video segment at offset {h.offset}")
            seg, name, codec = c.u32("segment"), c.str("file_name"), c.str("codec")
            path = os.path.join(os.path.dirname(os.path.abspath(self.path)), name)
            out[seg] = VideoSegment(seg, name, codec, path)
        return out

    def color_frames(self, stream=None):
        """Every colour-frame entry (§5.2) of a colour stream, in order: frame `i` of
        video segment `segment` is frame `index_in_video` of that segment's video file, at
        `video_time_us` in it (format version 2; ``None`` in version 1, whose videos have
        frame i at i / fps)."""
        sid = self.color_stream if stream is None else stream
        out = []
        if sid is None:
            return out
        for i in range(self.count(sid, COLOR_FRAME)):
            h, p = self.read_record(sid, COLOR_FRAME, i)
            c = _Cursor(p, 0, len(p), f"colour frame at offset {h.offset}")
            seg, idx = c.u32("segment"), c.u64("index_in_video")
            # Version 2 adds the time in the video; bytes after known fields are ignored.
            vt = c.i64("video_time_us") if len(p) >= 20 else None
            out.append(ColorFrame(i, h.frame_number, h.device_ts_ms, h.host_ts_us, seg, idx, vt))
        return out

    def imu(self, stream):
        """Every IMU sample (§5.3) of a gyro or accel stream, as a structured array. The clock
        of each sample's ``device_ts_ms`` is its batch's: :meth:`imu_ts_domains`."""
        return self._imu(stream)[0]

    def imu_ts_domains(self, stream):
        """The timestamp domain (§4.2) of each sample of :meth:`imu`, a uint8 array: the
        clock of the batch the sample was recorded in (a stream can change clocks between
        batches, never within one)."""
        return self._imu(stream)[1]

    def _imu(self, stream):
        parts, domains = [], []
        for i in range(self.count(stream, IMU_BATCH)):
            h, p = self.read_record(stream, IMU_BATCH, i)
            if len(p) < 8:
                raise FrameError(f"IMU batch at offset {h.offset} is too short")
            n, = struct.unpack_from("<I", p, 0)
            if len(p) != 8 + 40 * n:
                raise FrameError(f"IMU batch at offset {h.offset}: {len(p)} bytes for {n} samples")
            parts.append(np.frombuffer(p, dtype=IMU_DTYPE, count=n, offset=8))
            domains.append(np.full(n, h.ts_domain, dtype=np.uint8))
        if not parts:
            return np.zeros(0, dtype=IMU_DTYPE), np.zeros(0, dtype=np.uint8)
        return np.concatenate(parts), np.concatenate(domains)

    # -- summary and lifetime ----------------------------------------------------------

    def summary(self):
        """A JSON-friendly description of the file."""
        streams = []
        for s in self.streams:
            d = stream_description(s)
            d["records"] = {RECORD_TYPES.get(rt, f"type_{rt:#04x}"): self.count(s.id, rt)
                            for (sid, rt) in sorted(self.sections) if sid == s.id}
            rt = {1: DEPTH_FRAME, 3: INFRARED_FRAME}.get(s.kind, COLOR_FRAME)
            e = self.entries(s.id, rt)
            if len(e):
                d["frames"] = len(e)
                d["first_frame_number"] = int(e["frame_number"][0])
                d["last_frame_number"] = int(e["frame_number"][-1])
                d["first_device_ts_ms"] = float(e["device_ts_ms"][0])
                d["last_device_ts_ms"] = float(e["device_ts_ms"][-1])
                d["first_host_ts_us"] = int(e["host_ts_us"][0])
                d["last_host_ts_us"] = int(e["host_ts_us"][-1])
            streams.append(d)
        return {
            "file": self.path, "format_version": self.version, "writer": self.writer,
            "created_utc_us": self.created_utc_us, "closed": self.closed,
            "opened_via": self.opened_via, "torn_tail_bytes": self.torn_tail_bytes,
            "file_bytes": self.file_len, "device": self.device, "streams": streams,
            "gaps": [g._asdict() for g in self.gaps()],
            "events": [e._asdict() for e in self.events()],
            "metadata": self.metadata, "crc_backend": CRC_BACKEND,
        }

    def close(self):
        self.sections = {}
        m, self._mmap, self._buf = getattr(self, "_mmap", None), None, b""
        if m is not None:
            try:
                m.close()
            except BufferError:
                pass  # numpy views of the index still refer to it; it closes when they go
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# Sessions: several cameras, each possibly split into segment files

class SessionCamera:
    """One camera of a session: its files in order, read as one continuous recording."""

    def __init__(self, name, files):
        self.name = name
        self.files = files
        counts = [f.frame_count() if f.depth_stream is not None else 0 for f in files]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def frame_count(self):
        return int(self._starts[-1])

    def _locate(self, k):
        if not 0 <= k < self.frame_count():
            raise IndexError(f"{self.name}: frame {k} is out of range ({self.frame_count()} frames)")
        f = int(np.searchsorted(self._starts, k, side="right")) - 1
        return self.files[f], k - int(self._starts[f])

    def depth_frame(self, k):
        f, i = self._locate(k)
        fr = f.depth_frame(i)
        return fr._replace(index=k)

    def depth(self, k):
        return self.depth_frame(k).data

    def frames(self, start=0, stop=None, step=1):
        for k in range(*slice(start, stop, step).indices(self.frame_count())):
            yield self.depth_frame(k)

    def __iter__(self):
        return self.frames()

    def __len__(self):
        return self.frame_count()

    def timestamps(self):
        parts = [f.timestamps() for f in self.files if f.depth_stream is not None]
        if not parts:
            return Timestamps(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.uint64))
        return Timestamps(*(np.concatenate(x) for x in zip(*parts)))

    def gaps(self):
        return [g for f in self.files for g in f.gaps()]


class Session:
    """A session folder written by ``rsrec record`` (``session.json``)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(os.path.join(self.path, "session.json"), encoding="utf-8") as fh:
            self.info = json.load(fh)
        self.cameras = {}
        for c in self.info.get("cameras", []):
            files = [RsrecFile(os.path.join(self.path, name)) for name in c.get("files", [])]
            if files:
                self.cameras[c["name"]] = SessionCamera(c["name"], files)

    def camera(self, name):
        return self.cameras[name]

    def close(self):
        for c in self.cameras.values():
            for f in c.files:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# Command line

def _fmt_utc(us):
    import datetime

    t = datetime.datetime.fromtimestamp(us / 1e6, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _print_summary(f):
    s = f.summary()
    print(f"file:     {f.path}")
    print(f"format:   v{f.version}, written by {f.writer}, created {_fmt_utc(f.created_utc_us)}")
    status = "closed cleanly" if f.closed else (
        f"NOT closed (opened via {f.opened_via}; torn tail {f.torn_tail_bytes} bytes)")
    print(f"status:   {status}")
    d = f.device
    print(f"device:   {d['name']} (serial {d['serial']}, model {d['model']}, "
          f"firmware {d['firmware']})")
    for st in s["streams"]:
        print(f"stream {st['id']} {st['kind']} {st['name']!r}: {st['width']}x{st['height']} "
              f"{st['format']} @ {st['fps']:g} fps")
        if "frames" in st:
            dur = (st["last_device_ts_ms"] - st["first_device_ts_ms"]) / 1000.0
            print(f"  frames:  {st['frames']} (numbers {st['first_frame_number']} .. "
                  f"{st['last_frame_number']}), device {st['first_device_ts_ms']:.3f} .. "
                  f"{st['last_device_ts_ms']:.3f} ms ({dur:.3f} s)")
    gaps = s["gaps"]
    lost = sum(g["count"] for g in gaps)
    print(f"gaps:     {len(gaps)} ({lost} frames lost)" if gaps else "gaps:     none")
    for g in gaps[:10]:
        print(f"  stream {g['stream']}: frames {g['first_frame']}..{g['last_frame']} "
              f"({g['count']}), {g['reason_name']}: {g['detail']}")
    if s["events"]:
        print(f"events:   {len(s['events'])}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Summarise, check or extract frames of an .rsrec file.")
    ap.add_argument("file")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--check", action="store_true",
                    help="decode every depth frame (checking every CRC); exit 1 on any error")
    ap.add_argument("--frame", type=int, help="depth frame position to extract")
    ap.add_argument("--out", help="with --frame: write the frame to this .npy file")
    args = ap.parse_args(argv)
    try:
        with RsrecFile(args.file) as f:
            if f.header_restored:
                print(f"{args.file}: warning: the file header is damaged; read through its "
                      "copy (rsrec recover repairs the file)", file=sys.stderr)
            if args.json:
                print(json.dumps(f.summary(), indent=2, default=str))
            else:
                _print_summary(f)
            if args.frame is not None:
                fr = f.depth_frame(args.frame)
                if args.out:
                    np.save(args.out, fr.data)
                print(f"frame {fr.index}: number {fr.frame_number}, device {fr.device_ts_ms} ms, "
                      f"host {fr.host_ts_us} us, codec {CODECS.get(fr.codec, fr.codec)}, "
                      f"min {int(fr.data.min())} max {int(fr.data.max())}, "
                      f"{int((fr.data == 0).sum())} zeros")
            if args.check:
                bad = 0
                for k in range(f.frame_count() if f.depth_stream is not None else 0):
                    try:
                        f.depth_frame(k)
                    except FrameError as e:
                        bad += 1
                        print(f"frame {k}: {e}", file=sys.stderr)
                print(f"check: {f.frame_count() - bad} frames OK, {bad} bad")
                if bad:
                    return 1
    except (OSError, RsrecError, IndexError) as e:
        print(f"rsrec_reader: error: {args.file}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
