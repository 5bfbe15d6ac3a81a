#!/usr/bin/env bash
# Sets up librealsense 2.56.5 for building and testing rsrec with `--features realsense` on a
# machine without librealsense2-dev (CI, development machines without a camera), and prints
# the environment to use it:
#
#   eval "$(tools/realsense-env.sh)"     # set up (idempotent) and export the variables
#   tools/realsense-env.sh --print       # only print the export lines (no setup, no output
#                                        # when the setup is missing: exit 1)
#
# Where librealsense comes from: PyPI's pyrealsense2==2.56.5.9235 wheel (x86_64, CPython
# 3.11) links librealsense 2.56.5 statically into its Python module
# pyrealsense2/pyrealsense2.cpython-311-x86_64-linux-gnu.so and exports the whole rs2_* C
# API. realsense-sys 2.56.5 ships pre-generated bindings for exactly that version and links
# with `pkg-config realsense2`. So this script
#
#   1. installs Debian's libpython3.11, libusb-1.0-0 and libudev1 when missing (apt-get);
#   2. creates a Python venv in target/realsense-env/venv with pyrealsense2==2.56.5.9235,
#      numpy and Pillow (tools/make_test_bags.py uses it to write test .bag files);
#   3. creates target/realsense-env/lib with
#        librealsense2.so: a linker script that links the wheel's module (see below)
#        pyrealsense2.cpython-311-x86_64-linux-gnu.so.2.56 -> the wheel's module (its SONAME,
#                                                             found at run time)
#        libpython3.11.so                                  -> Debian's libpython3.11.so.1.0
#      and lib/pkgconfig/realsense2.pc (Libs: -L<lib> -lrealsense2 -lpython3.11);
#   4. writes target/realsense-env/env.sh (the export lines) and prints it.
#
# The module refers to Python's data symbols, so Debian's libpython3.11.so.1.0 must be loaded
# before it: LD_PRELOAD does that. LD_PRELOAD is inherited by every child process; programs
# that bring their own libpython (a pyenv or conda python) should be started without it (the
# tests do that), e.g. `env -u LD_PRELOAD python3 ...`.
#
# People with a camera do not need any of this: install librealsense2-dev (Intel's apt
# repository or a source build) and build with `cargo build --features realsense`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${RSREC_REALSENSE_ENV:-$ROOT/target/realsense-env}"
WHEEL_VERSION="2.56.5.9235"
MODULE="pyrealsense2.cpython-311-x86_64-linux-gnu.so"
SONAME="$MODULE.2.56"
LIBPYTHON="/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"

say() { printf 'realsense-env: %s\n' "$*" >&2; }
die() { printf 'realsense-env: error: %s\n' "$*" >&2; exit 1; }

print_env() {
  [ -f "$ENV_DIR/env.sh" ] || return 1
  cat "$ENV_DIR/env.sh"
}

if [ "${1:-}" = "--print" ]; then
  print_env || die "not set up yet: run tools/realsense-env.sh"
  exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
  || die "the pyrealsense2 wheel route needs Linux x86_64 (here: $(uname -s)-$(uname -m)); install librealsense2-dev instead"

# ---- 1. Debian libraries ---------------------------------------------------------------------
installed() {  # a Debian package is installed
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}
missing=()
for pkg in libpython3.11 libusb-1.0-0 libudev1; do
  installed "$pkg" || missing+=("$pkg")
done
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
[ -e "$LIBPYTHON" ] || die "$LIBPYTHON is missing after installing libpython3.11"

# ---- 2. the venv with the wheel ----------------------------------------------------------------
PY="${RSREC_REALSENSE_PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
  || die "$PY is not Python 3.11 (the wheel is cp311); set RSREC_REALSENSE_PYTHON to a python3.11"
VENV="$ENV_DIR/venv"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the venv $VENV"
  mkdir -p "$ENV_DIR"
  env -u LD_PRELOAD "$PY" -m venv "$VENV" >&2
fi
if ! env -u LD_PRELOAD "$VENV/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(m.version('pyrealsense2') != '$WHEEL_VERSION')
import numpy, PIL" 2>/dev/null; then
  say "installing pyrealsense2==$WHEEL_VERSION, numpy and Pillow into the venv"
  env -u LD_PRELOAD "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "pyrealsense2==$WHEEL_VERSION" numpy Pillow >&2
fi
SITE="$(env -u LD_PRELOAD "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
MODPATH="$SITE/pyrealsense2/$MODULE"
[ -f "$MODPATH" ] || die "the wheel did not install $MODPATH"

# ---- 3. links and the pkg-config file ----------------------------------------------------------
LIB="$ENV_DIR/lib"
mkdir -p "$LIB/pkgconfig"
# librealsense2.so is a GNU ld script rather than a link: it links the module and keeps the
# linked program from exporting its own LZ4 and xxHash symbols (rsrec has LZ4 1.10 through the
# `lz4` crate). Exported, they would take the place of the module's bundled copies (the
# module calls its LZ4/xxHash through the PLT) and librealsense's playback would fail on
# every LZ4-compressed .bag with "ROSLZ4_DATA_ERROR: malformed data to decompress".
script="/* GNU ld script written by tools/realsense-env.sh: librealsense2 is the pyrealsense2
   wheel's Python module; the program's own LZ4/xxHash symbols stay local. */
INPUT($MODPATH)
VERSION { { local: LZ4_*; XXH*; }; }"
if [ -L "$LIB/librealsense2.so" ] || [ ! -f "$LIB/librealsense2.so" ] \
   || [ "$(cat "$LIB/librealsense2.so")" != "$script" ]; then
  rm -f "$LIB/librealsense2.so"
  printf '%s\n' "$script" >"$LIB/librealsense2.so"
fi
ln -sfn "$MODPATH" "$LIB/$SONAME"
ln -sfn "$LIBPYTHON" "$LIB/libpython3.11.so"
pc="$LIB/pkgconfig/realsense2.pc"
pc_text="# librealsense 2.56.5 from the PyPI wheel pyrealsense2==$WHEEL_VERSION (tools/realsense-env.sh)
prefix=$ENV_DIR
libdir=$LIB
includedir=$ENV_DIR/include

Name: realsense2
Description: Intel(R) RealSense(tm) Cross Platform API (from the pyrealsense2 wheel)
Version: 2.56.5
URL: https://github.com/IntelRealSense/librealsense
Libs: -L\${libdir} -lrealsense2 -lpython3.11
Cflags: -I\${includedir}
"
if [ ! -f "$pc" ] || [ "$(cat "$pc")" != "$(printf '%s' "$pc_text")" ]; then
  printf '%s' "$pc_text" >"$pc"
fi

# ---- 4. the environment ------------------------------------------------------------------------
cat >"$ENV_DIR/env.sh.tmp" <<EOF
export PKG_CONFIG_PATH="$LIB/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export LD_PRELOAD="$LIBPYTHON"
export RSREC_REALSENSE_ENV="$ENV_DIR"
export RSREC_REALSENSE_VENV="$VENV"
EOF
mv "$ENV_DIR/env.sh.tmp" "$ENV_DIR/env.sh"

# Smoke check: the wheel's module loads and reports its librealsense version.
ver="$(env -u LD_PRELOAD "$VENV/bin/python" -c 'import pyrealsense2 as rs; print(rs.pyrealsense2.__version__)' 2>/dev/null || true)"
case "$ver" in
  2.56.*) say "ready: librealsense $ver in $LIB" ;;
  *) die "the pyrealsense2 module in $VENV does not load (version '$ver')" ;;
esac
print_env
