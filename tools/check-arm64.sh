#!/usr/bin/env bash
# Show that the node's runtime installs on a Raspberry Pi (arm64, Python 3.11, Raspberry Pi OS 12 "bookworm")
# without building anything, and run the unit tests there under emulation. Not part of CI (it takes long).
#   1. pip download, for aarch64 / CPython 3.11 / glibc 2.36 (bookworm), binary wheels only, of the runtime
#      requirements (setup.cfg install_requires: LiteRT, OpenCV, paho, ...) and pytest: every one must exist;
#   2. a Debian 12 arm64 root (tools/debian-root.sh: debootstrap, qemu-user-static);
#   3. in it, a venv from those wheels only (--no-index), and the unit tests (-m "not integration") on the
#      emulated aarch64 CPU, with this checkout's models.
# usage: sudo tools/check-arm64.sh [WORK_DIR] [pytest args...]     (default WORK_DIR /var/tmp/edge-anpr-arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
WORK=${1:-/var/tmp/edge-anpr-arm64}
shift || true
ROOT="$WORK/root"
WHEELS="$WORK/wheels"
PY=${PYTHON:-$SRC/.venv/bin/python}
mkdir -p "$WORK" "$WHEELS"

"$PY" - > "$WORK/requirements.txt" <<'PY'
import configparser
cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
for line in cfg["options"]["install_requires"].strip().splitlines():
    print(line.split(";")[0].strip())  # the markers name x86_64 and aarch64; the platform is given below
print("pytest>=8")
PY
platforms=()
for tag in manylinux_2_36 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014; do
  platforms+=(--platform "${tag}_aarch64")
done
echo "== 1. binary wheels for aarch64, CPython 3.11 (bookworm's glibc 2.36 runs manylinux_2_36 and older)"
"$PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.11 --implementation cp \
  --abi cp311 "${platforms[@]}" -d "$WHEELS" -r "$WORK/requirements.txt"
ls "$WHEELS" | sed 's/^/   /'

echo "== 2. Debian 12 arm64 root"
bash tools/debian-root.sh arm64 "$ROOT"

echo "== 3. the runtime from those wheels only, and the unit tests, on emulated aarch64"
rm -rf "$ROOT/opt/src" "$ROOT/opt/wheels"
mkdir -p "$ROOT/opt/src"
git ls-files -z | tar -c --null -T - | tar -x -C "$ROOT/opt/src"
cp -r "$WHEELS" "$ROOT/opt/wheels"
cp "$WORK/requirements.txt" "$ROOT/opt/requirements.txt"
bash tools/debian-root.sh --enter "$ROOT" /bin/sh -c '
  set -e
  uname -m
  [ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv
  /opt/venv/bin/pip install -q --disable-pip-version-check --no-index --find-links /opt/wheels -r /opt/requirements.txt
  /opt/venv/bin/python -c "import platform, sys, cv2, numpy, ai_edge_litert; print(platform.machine(), sys.version.split()[0], \"opencv\", cv2.__version__, \"numpy\", numpy.__version__)"
  cd /opt/src
  exec /opt/venv/bin/python -m pytest -q -p no:cacheprovider -m "not integration and not slow" "$@"
' sh "$@"
