#!/usr/bin/env bash
# Install edge-anpr on a Raspberry Pi OS 12 (Debian bookworm, 64-bit) unit, from this source checkout:
#   the package into /opt/edge-anpr/venv (with --system-site-packages on a Pi, for python3-picamera2),
#   the models into /opt/edge-anpr/models (trained and converted ones copied, registry ones fetched, all
#   sha256-checked; run scripts/setup.sh first, it converts the plate reader),
#   the config into /etc/edge-anpr (provisioned when --site/--camera/--broker are given),
#   the service user edge-anpr (group video) and the systemd unit, enabled.
#
# usage: sudo scripts/install-node.sh [--site S --camera C --broker HOST[:PORT] [--ca ca.crt]] [--no-start]
#        scripts/install-node.sh --dry-run ...   (print what would run, change nothing; no root needed)
# Safe to run again (an upgrade): the config, key and state are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$(pwd)"

PREFIX=/opt/edge-anpr
ETC=/etc/edge-anpr
UNIT=/etc/systemd/system/edge-anpr.service
USER_NAME=edge-anpr
DRY=0
START=1
PROVISION=()

while [ $# -gt 0 ]; do
  case "$1" in
    --site|--camera|--broker|--ca) [ $# -ge 2 ] || { echo "install-node: $1 needs a value" >&2; exit 2; }
                                   PROVISION+=("$1" "$2"); shift 2 ;;
    --no-start) START=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install-node: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

run() {  # run a command, or only show it with --dry-run
  if [ "$DRY" -eq 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
say() { echo "install-node: $*" >&2; }

if [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  say "run as root (sudo $0 $*), or with --dry-run to see the steps"; exit 1
fi

IS_PI=0
if grep -qs "Raspberry Pi" /proc/device-tree/model 2>/dev/null; then IS_PI=1; fi

# 1. System packages: Python venv, openssl (key + CSR), the camera stack from the OS (it must match libcamera).
PKGS=(python3-venv python3-pip openssl)
if [ "$IS_PI" -eq 1 ]; then PKGS+=(python3-picamera2); fi
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The service user: no login, no home, in group video for /dev/video*, /dev/media*, /dev/dma_heap/*.
if ! getent passwd "$USER_NAME" >/dev/null; then
  say "creating system user $USER_NAME"
  run useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$USER_NAME"
fi
run usermod -a -G video "$USER_NAME"

# 3. The package, in its own venv (system site packages on a Pi: picamera2 and libcamera come from the OS).
VENV_OPTS=()
if [ "$IS_PI" -eq 1 ]; then VENV_OPTS+=(--system-site-packages); fi
[ -x "$PREFIX/venv/bin/python" ] || run python3 -m venv "${VENV_OPTS[@]}" "$PREFIX/venv"
run "$PREFIX/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
run "$PREFIX/venv/bin/python" -m pip install -q --disable-pip-version-check "$SRC"

# 4. Models: the manifest and trained models from the checkout, registry models fetched; all sha256-checked.
run install -d -m 0755 "$PREFIX/models" "$PREFIX/share" "$PREFIX/docs"
run install -m 0644 "$SRC/models/manifest.json" "$PREFIX/models/manifest.json"
for f in "$SRC"/models/*.tflite; do
  [ -e "$f" ] && run install -m 0644 "$f" "$PREFIX/models/"
done
# The converted plate reader (PP-OCR) and plate detector (WPOD-NET, the second look) come from the checkout:
# scripts/setup.sh converts them there (on this unit, or on a build machine whose models/fetched/ was copied
# here); their sha256 is checked below.
for m in ppocr_rec_plate wpod_net; do
  if [ ! -e "$SRC/models/fetched/$m.tflite" ]; then
    echo "install-node: models/fetched/$m.tflite is missing: run scripts/setup.sh first" >&2
    exit 3
  fi
done
run install -d -m 0755 "$PREFIX/models/fetched"
run install -m 0644 "$SRC/models/fetched/ppocr_rec_plate.tflite" "$SRC/models/fetched/wpod_net.tflite" "$PREFIX/models/fetched/"
run "$PREFIX/venv/bin/python" -m edge.runtime.fetch --models-dir "$PREFIX/models"
run "$PREFIX/venv/bin/python" -m edge.runtime.fetch --models-dir "$PREFIX/models" --check ppocr_rec_plate
run "$PREFIX/venv/bin/python" -m edge.runtime.fetch --models-dir "$PREFIX/models" --check wpod_net
run chmod -R a+rX "$PREFIX/models"

# 5. Template, docs, config directory (root:edge-anpr 0750: the key inside is the service user's).
run install -m 0644 "$SRC/config/example.yaml" "$PREFIX/share/config.example.yaml"
run install -m 0644 "$SRC/docs/field-engineers.md" "$PREFIX/docs/field-engineers.md"
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [ "${#PROVISION[@]}" -gt 0 ]; then
  if [ -e "$ETC/config.yaml" ]; then
    say "$ETC/config.yaml exists: kept (provision by hand with --force to replace it)"
  else
    run "$PREFIX/venv/bin/edge-anpr" provision --out "$ETC" --template "$PREFIX/share/config.example.yaml" \
      --no-input "${PROVISION[@]}"
  fi
fi

# 6. The unit: verified, installed, enabled; started only once a config is there.
run systemd-analyze verify "$SRC/systemd/edge-anpr.service" || say "systemd-analyze verify reported the above"
run install -m 0644 "$SRC/systemd/edge-anpr.service" "$UNIT"
run systemctl daemon-reload
run systemctl enable edge-anpr.service
if [ "$START" -eq 1 ] && [ -e "$ETC/config.yaml" ] && [ -e "$ETC/tls/node.crt" ]; then
  run systemctl restart edge-anpr.service
  say "started; check with: systemctl status edge-anpr; journalctl -u edge-anpr -f"
else
  say "enabled, not started: provision the config and install tls/node.crt (docs/field-engineers.md), then"
  say "  sudo -u $USER_NAME $PREFIX/venv/bin/edge-anpr selftest --config $ETC/config.yaml"
  say "  sudo systemctl start edge-anpr"
fi
