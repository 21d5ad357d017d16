#!/usr/bin/env bash
# Set up everything this project needs on a fresh Debian 12 / Raspberry Pi OS (64-bit) machine:
# system packages (mosquitto for the local broker, postgresql for the central store's tests, openssl,
# python3-venv) and a virtual environment in .venv with the package, its tools and the central extra (psycopg);
# then it checks the models that ship in models/ against their sha256 (no TensorFlow, no conversion).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
# PostgreSQL's server for the central store's tests and `bench central` (they start their own throw-away cluster)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 - <<'PY' || { echo "setup: Python 3.11 or newer is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
  venv_opts=""
  # On a Pi, picamera2 comes from the OS package (python3-picamera2) and must match libcamera.
  if python3 -c "import picamera2" >/dev/null 2>&1; then venv_opts="--system-site-packages"; fi
  echo "setup: creating .venv ${venv_opts}" >&2
  python3 -m venv $venv_opts .venv
fi
log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
       .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,central]"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: pip install failed (output above)" >&2
  exit 1
fi
# The models ship in models/ (converted once by the maintainers' tools/convert_*.py, see README "Models");
# set-up converts and downloads none: it only checks each against models/manifest.json's sha256.
if ! .venv/bin/python -m edge.runtime.check --models-dir models >/dev/null 2>"$log"; then
  cat "$log" >&2
  echo "setup: the models in models/ do not match models/manifest.json (above): restore them with git" >&2
  exit 1
fi
rm -f "$log"
echo "setup: done (.venv ready, models verified)" >&2
