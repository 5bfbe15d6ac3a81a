#!/usr/bin/env bash
# The one command that tests rsrec: installs what the tests need on a fresh Debian machine
# (as root, or with sudo) and runs the whole suite: formatting, clippy, unit, property and
# integration tests (real RealSense data from ../shared/data or $RSREC_DATA_DIR), the
# fixture check, the benchmarks in test mode, and a short fuzzing smoke run.
#
#   tools/test.sh                       # everything
#   RSREC_FUZZ_SECONDS=0 tools/test.sh  # skip fuzzing
#   RSREC_SKIP_REALSENSE=1 tools/test.sh  # skip the RealSense feature build (not in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==== %s ====\n' "$*"; }

# ---- system packages -------------------------------------------------------------------
# A C compiler (zstd-sys, libFuzzer), FFmpeg (colour video; ffprobe checks the files),
# pkill (procps) for the FFmpeg-failure test.
packages=()
command -v cc >/dev/null 2>&1 || packages+=(build-essential)
command -v c++ >/dev/null 2>&1 || packages+=(g++)
command -v ffmpeg >/dev/null 2>&1 || packages+=(ffmpeg)
command -v pkill >/dev/null 2>&1 || packages+=(procps)
# The viewer test (tests/view.rs): an X server (Xvfb), xwd for screenshots, xdotool for key
# presses, and what eframe (winit on X11, glutin + glow) loads at run time with dlopen: Xlib
# and its extensions, xkbcommon, and OpenGL through GLX/EGL with Mesa's software rasteriser.
command -v Xvfb >/dev/null 2>&1 || packages+=(xvfb)
command -v xwd >/dev/null 2>&1 || packages+=(x11-apps)
command -v xdotool >/dev/null 2>&1 || packages+=(xdotool)
for lib in libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon0 libxkbcommon-x11-0 \
    libgl1 libegl1 libgl1-mesa-dri; do
  dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q 'install ok installed' || packages+=("$lib")
done
if [ "${#packages[@]}" -gt 0 ]; then
  step "installing Debian packages: ${packages[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${packages[@]}"
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# ---- Python (numpy, Pillow, lz4, zstandard) for checking exports and the Python reader ----
if ! python3 -m venv --help >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  step "creating the Python venv in .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
export RSREC_PYTHON="$PWD/.venv/bin/python"

# ---- lints -----------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "build without default features (no viewer, no display stack)"
cargo clippy --no-default-features --all-targets -- -D warnings
step "cargo doc (the API documentation builds without warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

# ---- tests -----------------------------------------------------------------------------
step "cargo test (unit, property, integration, benchmarks in test mode)"
cargo test --all-targets
cargo test --doc

step "fixtures are what the current code generates"
tools/gen-fixtures.sh --verify

# ---- RealSense backend (cargo feature `realsense`) ---------------------------------------
# librealsense 2.56.5 comes from the pyrealsense2 wheel (tools/realsense-env.sh sets it up:
# Debian libraries, a venv with the wheel, a pkg-config file).
# The test plays generated .bag files through librealsense as cameras.
if [ "${RSREC_SKIP_REALSENSE:-0}" != 1 ] || [ "${CI:-}" = true ]; then
  step "RealSense: librealsense from the pyrealsense2 wheel (tools/realsense-env.sh)"
  realsense_env="$(tools/realsense-env.sh)"
  (
    eval "$realsense_env"
    # The default target dir: cargo keeps each feature set's artifacts apart, so this build
    # reuses every dependency built above (a target dir of its own rebuilt them all: 6 min
    # against 3.5 min) and only crates that read PKG_CONFIG_PATH (bzip2-sys) build again.
    # Without the viewer (its own build and test run above): the two features do not touch
    # each other's code, and a second eframe build would cost minutes.
    rs_features=(--no-default-features --features realsense)
    step "cargo clippy ${rs_features[*]} --all-targets -- -D warnings"
    cargo clippy "${rs_features[@]}" --all-targets -- -D warnings
    step "cargo test ${rs_features[*]} (RealSense backend, librealsense playback)"
    cargo test "${rs_features[@]}" --lib --bins --test it realsense::
  )
fi

# ---- fuzzing ---------------------------------------------------------------------------
fuzz_seconds="${RSREC_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" -gt 0 ]; then
  step "fuzz smoke run (${fuzz_seconds}s per target)"
  cargo build --quiet   # seeds.sh uses the rsrec binary
  fuzz/smoke.sh "$fuzz_seconds"
fi

step "all checks passed"
