#!/usr/bin/env python3
"""Writes genuine librealsense .bag files from real depth PNG sets, through librealsense itself.

Each set (a folder with depth/*.png, 16-bit, and optionally color/*.png|jpg) becomes one bag:
a pyrealsense2 ``software_device`` (name, serial, firmware, USB type, product line) with a
depth sensor (Z16, the set's size, intrinsics, ``Depth Units`` option) and, when the set has
colour, a colour sensor (RGB8), wrapped in a ``rs.recorder`` (LZ4-compressed chunks, as the
RealSense Viewer writes them). Every sample is fed at its own time, in real time, at the
nominal rate (the recorder stamps every message with the wall-clock time since the recording
started, and real-time playback replays those times), with frame numbers (from 1), device
timestamps, a timestamp domain (hardware clock, global time, system time for the 1st, 2nd,
3rd set) and per-frame metadata (exposure, gain, laser power, frame counter). Optionally,
synthetic gyro (200 Hz) and accel (63 Hz) streams on a motion sensor.

Variants for the RealSense backend's tests (``SET:SERIAL:NAME`` writes ``NAME.bag``, so one
set can give several bags; the options below take that NAME):
``--imu NAME[:GYRO_HZ:ACCEL_HZ]`` (IMU rates, default 200/63), ``--domain NAME:DOMAIN`` (the
clock of every stream), ``--frames NAME:N`` (N depth frames, cycling through the set's
PNGs), ``--depth-stops-after NAME:K`` (depth and colour stop after K frames while the IMU
goes on to the end), ``--no-counter NAME:EVERY`` (no ``frame_counter`` metadata and every
EVERY-th frame not sent while the frame numbers stay contiguous, as a camera without UVC
metadata whose frames were lost), ``--no-depth NAME`` (colour only: a camera rsrec cannot
record), ``--ir NAME`` (left and right infrared, Y8 at the depth's size and rate on the stereo
module, each frame with its depth frame's number and timestamp; the pixels, derived from the
depth and a fixed projector-dot pattern, are saved as ``NAME.ir_left.npy`` and
``NAME.ir_right.npy``, N x H x W uint8, for bit-exact checks).

Next to every ``<set>.bag`` a ``<set>.json`` manifest says what was written (per depth frame:
its source PNG, frame number, timestamp and metadata; depth units, intrinsics, serial,
timestamp domain, colour and IMU counts) so that tests can check recordings of the bag
against the source frames.

Usage (with the venv of tools/realsense-env.sh):
    make_test_bags.py --out DIR [--data DATA_DIR] [--fps 30] [--max-frames N]
                      [--no-color] [--imu NAME[:G:A]] [variant options] [SET ...]

SET is a folder name under DATA_DIR (default: ../shared/data, or $RSREC_DATA_DIR), optionally
``SET:SERIAL`` or ``SET:SERIAL:NAME``. Sets are written in parallel (one thread each). Needs pyrealsense2, numpy
and Pillow.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyrealsense2 as rs
from PIL import Image

DEFAULT_SETS = ["d4xx-lab-robot", "d435-ceiling-highacc", "d4xx-848x480-desk-holes"]
DOMAINS = [
    ("hardware_clock", rs.timestamp_domain.hardware_clock),
    ("global_time", rs.timestamp_domain.global_time),
    ("system_time", rs.timestamp_domain.system_time),
]
DOMAIN_CODES = {"hardware_clock": 0, "system_time": 1, "global_time": 2}
GYRO_HZ = 200
ACCEL_HZ = 63
DOMAIN_BY_NAME = {name: d for name, d in DOMAINS}


class Variant:
    """Per-bag options (see the module doc)."""

    def __init__(self):
        self.imu = None  # (gyro_hz, accel_hz)
        self.domain = None  # index into DOMAINS
        self.frames = 0
        self.depth_stops_after = 0
        self.no_counter = 0
        self.no_depth = False
        self.ir = False


def infrared_frames(depth, right):
    """8-bit images of each depth frame as an imager might see them: nearer is brighter,
    holes dark, a fixed pseudo-random projector-dot pattern, the right imager shifted."""
    h, w = depth[0].shape
    rng = np.random.default_rng(17 + int(right))
    dots = (rng.random((h, w)) < 0.05).astype(np.int16) * 60
    out = []
    for d in depth:
        d = np.roll(d, -w // 20, axis=1) if right else d
        base = np.where(d == 0, 20, np.clip(230 - d.astype(np.int32) // 25, 30, 230)).astype(np.int16)
        out.append(np.ascontiguousarray(np.clip(base + dots, 0, 255).astype(np.uint8)))
    return out


def natural_key(p):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def images(folder, exts):
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in exts), key=natural_key)


def load_depth(path):
    img = Image.open(path)
    a = np.asarray(img)
    if a.ndim != 2:
        raise SystemExit(f"{path}: not a single-channel depth image (shape {a.shape})")
    if a.dtype != np.uint16:
        if a.min() < 0 or a.max() > 65535:
            raise SystemExit(f"{path}: values outside 0..65535")
        a = a.astype(np.uint16)
    return np.ascontiguousarray(a)


def load_color(path, size):
    img = Image.open(path).convert("RGB")
    if img.size != size:
        img = img.resize(size)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def intrinsics_for(set_dir, w, h):
    """The set's own intrinsics when it has them, else those of a typical D435 depth mode."""
    j = set_dir / "camera_intrinsic.json"
    if j.is_file():
        d = json.loads(j.read_text())
        m = d["intrinsic_matrix"]  # column-major 3x3
        if (d.get("width"), d.get("height")) == (w, h):
            return dict(fx=m[0], fy=m[4], ppx=m[6], ppy=m[7], model="brown_conrady", coeffs=[0.0] * 5)
    f = 0.5 * w / np.tan(np.radians(87.0) / 2)  # D435 depth HFOV ~87 degrees
    return dict(fx=float(f), fy=float(f), ppx=(w - 1) / 2 + 0.25, ppy=(h - 1) / 2 - 0.5,
                model="brown_conrady", coeffs=[0.0] * 5)


def rs_intrinsics(k, w, h):
    i = rs.intrinsics()
    i.width, i.height = w, h
    i.fx, i.fy, i.ppx, i.ppy = k["fx"], k["fy"], k["ppx"], k["ppy"]
    i.model = getattr(rs.distortion, k["model"])
    i.coeffs = list(k["coeffs"])
    return i


def write_bag(set_dir, serial, name, index, out_dir, fps, max_frames, with_color, variant,
              compress, errors):
    try:
        _write_bag(set_dir, serial, name, index, out_dir, fps, max_frames, with_color, variant,
                   compress)
    except BaseException as e:  # reported by the main thread
        errors.append(f"{name}: {type(e).__name__}: {e}")


def _write_bag(set_dir, serial, name, index, out_dir, fps, max_frames, with_color, opt, compress):
    with_imu = opt.imu is not None
    gyro_hz, accel_hz = opt.imu or (GYRO_HZ, ACCEL_HZ)
    pngs = images(set_dir / "depth", {".png"}) or images(set_dir, {".png"})
    if not pngs:
        raise SystemExit(f"{set_dir}: no depth PNGs")
    if max_frames:
        pngs = pngs[:max_frames]
    if opt.frames:
        pngs = [pngs[i % len(pngs)] for i in range(opt.frames)]
    depth = [load_depth(p) for p in pngs]
    h, w = depth[0].shape
    for p, d in zip(pngs, depth):
        if d.shape != (h, w):
            raise SystemExit(f"{p}: {d.shape[1]}x{d.shape[0]}, the first frame is {w}x{h}")
    colors = images(set_dir / "color", {".png", ".jpg", ".jpeg"}) if with_color else []
    colors = colors[: len(depth)]
    cw, ch = (640, 480)
    if colors:
        cw, ch = Image.open(colors[0]).size
    color = [load_color(p, (cw, ch)) for p in colors]

    depth_units = 0.001
    k = intrinsics_for(set_dir, w, h)
    domain_name, domain = DOMAINS[(index if opt.domain is None else opt.domain) % len(DOMAINS)]
    bag = out_dir / f"{name}.bag"
    if bag.exists():
        bag.unlink()

    dev = rs.software_device()
    dev.register_info(rs.camera_info.name, "Intel RealSense D435I (rsrec test bag)")
    dev.register_info(rs.camera_info.serial_number, serial)
    dev.register_info(rs.camera_info.firmware_version, "5.16.0.1")
    dev.register_info(rs.camera_info.usb_type_descriptor, "3.2")
    dev.register_info(rs.camera_info.product_line, "D400")
    dev.register_info(rs.camera_info.product_id, "0B3A")

    ds = dev.add_sensor("RGB Camera" if opt.no_depth else "Stereo Module")
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = (rs.stream.infrared if opt.no_depth else rs.stream.depth), 0, 0
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = w, h, fps, 2, (rs.format.y16 if opt.no_depth else rs.format.z16)
    vs.intrinsics = rs_intrinsics(k, w, h)
    depth_profile = ds.add_video_stream(vs).as_video_stream_profile()
    ds.add_read_only_option(rs.option.depth_units, depth_units)
    sensors = [(ds, [depth_profile])]
    ir_profiles, ir = [], []
    if opt.ir:
        for index in (1, 2):
            ivs = rs.video_stream()
            ivs.type, ivs.index, ivs.uid = rs.stream.infrared, index, 3 + index
            ivs.width, ivs.height, ivs.fps, ivs.bpp, ivs.fmt = w, h, fps, 1, rs.format.y8
            ivs.intrinsics = rs_intrinsics(k, w, h)
            ip = ds.add_video_stream(ivs).as_video_stream_profile()
            # The right imager 50 mm to the side of the left one (the depth's origin).
            e = rs.extrinsics()
            e.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            e.translation = [0.0 if index == 1 else -0.05, 0.0, 0.0]
            ip.register_extrinsics_to(depth_profile, e)
            ir_profiles.append(ip)
            ir.append(infrared_frames(depth, index == 2))
        sensors[0][1].extend(ir_profiles)

    color_profile = None
    if color:
        cs = dev.add_sensor("RGB Camera")
        cvs = rs.video_stream()
        cvs.type, cvs.index, cvs.uid = rs.stream.color, 0, 1
        cvs.width, cvs.height, cvs.fps, cvs.bpp, cvs.fmt = cw, ch, fps, 3, rs.format.rgb8
        f = cw * 0.6
        cvs.intrinsics = rs_intrinsics(
            dict(fx=f, fy=f, ppx=cw / 2, ppy=ch / 2, model="inverse_brown_conrady", coeffs=[0.0] * 5),
            cw, ch)
        color_profile = cs.add_video_stream(cvs).as_video_stream_profile()
        # Colour to depth: 15 mm along x, as on a D435.
        e = rs.extrinsics()
        e.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        e.translation = [-0.015, 0.0, 0.0]
        color_profile.register_extrinsics_to(depth_profile, e)
        sensors.append((cs, [color_profile]))

    gyro_profile = accel_profile = None
    if with_imu:
        ms = dev.add_sensor("Motion Module")
        g = rs.motion_stream()
        g.type, g.index, g.uid, g.fps, g.fmt = rs.stream.gyro, 0, 2, gyro_hz, rs.format.motion_xyz32f
        gyro_profile = ms.add_motion_stream(g).as_motion_stream_profile()
        a = rs.motion_stream()
        a.type, a.index, a.uid, a.fps, a.fmt = rs.stream.accel, 0, 3, accel_hz, rs.format.motion_xyz32f
        accel_profile = ms.add_motion_stream(a).as_motion_stream_profile()
        sensors.append((ms, [gyro_profile, accel_profile]))

    recorder = rs.recorder(str(bag), dev, compress)
    for s, profiles in sensors:
        s.open(profiles)
        s.start(lambda f: None)

    t0_ms = 1_000_000.0 + 1000.0 * index  # device clock of the first frame
    frames = []
    keep = []  # pixel buffers stay alive until the recorder has them
    # Every sample at its own time: (seconds from the start, order, kind, index). Samples are
    # written when due, so that the bag's message times are as evenly spaced as a camera's.
    last_t = (len(depth) - 1) / fps
    events = [(i / fps, 0, "frame", i) for i in range(len(depth))]
    imu_count = {"gyro": 0, "accel": 0}
    if with_imu:
        for kind, hz in (("gyro", gyro_hz), ("accel", accel_hz)):
            events += [(k / hz, 1, kind, k) for k in range(int(last_t * hz) + 1)]
    events.sort()
    motion = sensors[-1][0] if with_imu else None
    start = time.monotonic()
    for t, _, kind, i in events:
        now = time.monotonic()
        if start + t > now:
            time.sleep(start + t - now)
        if kind != "frame":
            mf = rs.software_motion_frame()
            v = rs.vector()
            v.x, v.y, v.z = (0.01 * (i % 7), -0.02, 0.03) if kind == "gyro" else (0.0, -9.81, 0.1 * (i % 3))
            mf.data = v
            mf.timestamp = t0_ms + t * 1000.0
            mf.domain = domain
            mf.frame_number = i + 1
            mf.profile = gyro_profile if kind == "gyro" else accel_profile
            motion.on_motion_frame(mf)
            imu_count[kind] += 1
            continue
        d = depth[i]
        ts = t0_ms + i * 1000.0 / fps
        if opt.depth_stops_after and i >= opt.depth_stops_after:
            continue  # the video streams stall; the IMU goes on
        if opt.no_counter and i % opt.no_counter == opt.no_counter - 1:
            continue  # lost in the camera: no number is skipped without a counter
        number = (i + 1 - (i // opt.no_counter if opt.no_counter else 0))
        meta = {"actual_exposure": 8000 + i, "gain_level": 16 + i % 4, "frame_laser_power": 150}
        if not opt.no_counter:
            meta["frame_counter"] = number
        for key, v in meta.items():
            ds.set_metadata(getattr(rs.frame_metadata_value, key), v)
        f = rs.software_video_frame()
        f.pixels = d
        f.stride = w * 2
        f.bpp = 2
        f.timestamp = ts
        f.domain = domain
        f.frame_number = number
        f.profile = depth_profile
        if not opt.no_depth:
            f.depth_units = depth_units
        ds.on_video_frame(f)
        keep.append(d)
        for ip, frames_of in zip(ir_profiles, ir):
            irf = rs.software_video_frame()
            irf.pixels = frames_of[i]
            irf.stride = w
            irf.bpp = 1
            irf.timestamp = ts
            irf.domain = domain
            irf.frame_number = number
            irf.profile = ip
            ds.on_video_frame(irf)
            keep.append(frames_of[i])
        if i < len(color):
            cs = sensors[1][0]
            cs.set_metadata(rs.frame_metadata_value.actual_exposure, 300 + i)
            cf = rs.software_video_frame()
            cf.pixels = color[i]
            cf.stride = cw * 3
            cf.bpp = 3
            cf.timestamp = ts + 0.25
            cf.domain = domain
            cf.frame_number = number
            cf.profile = color_profile
            cs.on_video_frame(cf)
            keep.append(color[i])
        frames.append({"png": str(pngs[i]), "frame_number": number, "timestamp_ms": ts,
                       "index": i, "metadata": meta})
    # Let the recorder's writer thread catch up before closing the file.
    time.sleep(0.3)
    for s, _ in sensors:
        s.stop()
        s.close()
    del recorder
    del sensors, ds, dev
    keep.clear()

    manifest = {
        "set": name,
        "bag": str(bag),
        "serial": serial,
        "device_name": "Intel RealSense D435I (rsrec test bag)",
        "firmware": "5.16.0.1",
        "usb_type": "3.2",
        "fps": fps,
        "width": w,
        "height": h,
        "depth_units": depth_units,
        "intrinsics": k,
        "timestamp_domain": domain_name,
        "timestamp_domain_code": DOMAIN_CODES[domain_name],
        "frames": frames,
        "color": {"width": cw, "height": ch, "count": len(color)} if color else None,
        "imu": imu_count if with_imu else None,
        "imu_rates": {"gyro": gyro_hz, "accel": accel_hz} if with_imu else None,
        "depth_stops_after": opt.depth_stops_after or None,
        "lost_every": opt.no_counter or None,
        "no_depth": opt.no_depth,
    }
    if ir:
        sent = [f["index"] for f in frames]
        for side, frames_of in zip(("ir_left", "ir_right"), ir):
            np.save(out_dir / f"{name}.{side}.npy", np.stack([frames_of[i] for i in sent]))
        manifest["ir"] = {"streams": ["ir_left", "ir_right"], "count": len(sent)}
    (out_dir / f"{name}.json").write_text(json.dumps(manifest, indent=1))
    print(f"{bag}: {len(frames)} depth frames {w}x{h}"
          + (f", {len(color)} colour frames {cw}x{ch}" if color else "")
          + (f", {imu_count['gyro']} gyro + {imu_count['accel']} accel samples" if with_imu else "")
          + f", serial {serial}, {domain_name}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="*", help="set folders under --data, optionally SET:SERIAL")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("RSREC_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--max-frames", type=int, default=0, help="at most this many frames per set (0: all)")
    ap.add_argument("--no-color", action="store_true")
    ap.add_argument("--imu", action="append", default=[],
                    help="add gyro/accel streams to this bag: NAME or NAME:GYRO_HZ:ACCEL_HZ")
    ap.add_argument("--domain", action="append", default=[], help="NAME:DOMAIN")
    ap.add_argument("--frames", action="append", default=[], help="NAME:N")
    ap.add_argument("--depth-stops-after", action="append", default=[], help="NAME:K")
    ap.add_argument("--no-counter", action="append", default=[], help="NAME:EVERY")
    ap.add_argument("--no-depth", action="append", default=[], help="NAME")
    ap.add_argument("--ir", action="append", default=[], help="NAME: add infrared left and right")
    ap.add_argument("--no-compress", action="store_true", help="write uncompressed bag chunks")
    a = ap.parse_args()
    sets = a.sets or DEFAULT_SETS
    a.out.mkdir(parents=True, exist_ok=True)
    threads, errors = [], []
    variants = {}

    def variant(name):
        return variants.setdefault(name, Variant())

    for spec in a.imu:
        name, *rates = spec.split(":")
        variant(name).imu = (int(rates[0]), int(rates[1])) if rates else (GYRO_HZ, ACCEL_HZ)
    for spec in a.domain:
        name, dom = spec.split(":")
        variant(name).domain = [n for n, _ in DOMAINS].index(dom)
    for spec in a.frames:
        name, n = spec.split(":")
        variant(name).frames = int(n)
    for spec in a.depth_stops_after:
        name, k = spec.split(":")
        variant(name).depth_stops_after = int(k)
    for spec in a.no_counter:
        name, k = spec.split(":")
        variant(name).no_counter = int(k)
    for name in a.no_depth:
        variant(name).no_depth = True
    for name in a.ir:
        variant(name).ir = True
    for i, s in enumerate(sets):
        set_name, serial, name = (s.split(":") + ["", ""])[:3]
        serial = serial or f"9123000000{i + 1:02d}"
        name = name or set_name
        d = a.data / set_name
        if not d.is_dir():
            raise SystemExit(f"{d}: no such set")
        t = threading.Thread(target=write_bag, args=(d, serial, name, i, a.out, a.fps, a.max_frames,
                                                     not a.no_color, variants.get(name, Variant()),
                                                     not a.no_compress, errors))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if errors:
        for e in errors:
            print(f"make_test_bags.py: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
