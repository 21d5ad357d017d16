#!/usr/bin/env bash
# Install edge-anpr on a Raspberry Pi OS 12 (Debian bookworm, 64-bit) unit, from this source checkout:
#   the release into /opt/edge-anpr/releases/<version> (the layout over-the-air updates use: current and
#   stable link to it; /opt/edge-anpr/venv and /opt/edge-anpr/models link into current), with
#   the runtime in its venv (LiteRT, OpenCV, paho, ...; --system-site-packages on a Pi, for
#   python3-picamera2) and `edge-anpr` on the PATH (/usr/local/bin),
#   the models in its models/ from this checkout's models/ (they ship in the repository; no
#   conversion, no download), every model sha256-checked against models/manifest.json,
#   the config into /etc/edge-anpr (provisioned when --site/--camera/--broker are given),
#   the service user edge-anpr (group video), the service, its first-boot unit and the updater's timer and
#   path units, enabled.
#
# usage: sudo scripts/install-node.sh [--site S --camera C --broker HOST[:PORT] [--ca ca.crt]]
#                                     [--no-start] [--image] [--python /usr/bin/python3]
#        scripts/install-node.sh --dry-run ...   (print what would run, change nothing; no root needed)
#   --image   prepare a card image for many units: no identity on it; each unit takes its own at first boot
#             from edge-anpr-node.yaml on its boot partition (edge-anpr firstboot)
# Safe to run again (an upgrade): the config, key and state are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$(pwd)"

PREFIX=/opt/edge-anpr
ETC=/etc/edge-anpr
UNITS=/etc/systemd/system
USER_NAME=edge-anpr
BIN_LINK=/usr/local/bin/edge-anpr
DRY=0
START=1
IMAGE=0
PYTHON=""
PROVISION=()

while [ $# -gt 0 ]; do
  case "$1" in
    --site|--camera|--broker|--ca) [ $# -ge 2 ] || { echo "install-node: $1 needs a value" >&2; exit 2; }
                                   PROVISION+=("$1" "$2"); shift 2 ;;
    --python) [ $# -ge 2 ] || { echo "install-node: $1 needs a path" >&2; exit 2; }
              PYTHON="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    --image) IMAGE=1; START=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "install-node: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

run() {  # run a command, or only show it with --dry-run
  if [ "$DRY" -eq 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
say() { echo "install-node: $*" >&2; }
die() { local code=$1; shift; echo "install-node: error: $*" >&2; exit "$code"; }

# -- 0. Before changing anything: root, systemd, Python, the models. ------------------------------------
if [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  say "run as root (sudo $0 $*), or with --dry-run to see the steps"; exit 1
fi
if [ "$DRY" -eq 0 ] && ! command -v systemctl >/dev/null 2>&1; then
  die 1 "systemctl is missing: the node runs as a systemd service; install on Raspberry Pi OS or Debian with systemd"
fi
if [ "$IMAGE" -eq 1 ] && [ "${#PROVISION[@]}" -gt 0 ]; then
  die 2 "--image makes a card for many units: give no --site/--camera/--broker (each unit takes its own at first boot)"
fi
if [ "$IMAGE" -eq 1 ] && [ "$DRY" -eq 0 ] && { [ -e "$ETC/config.yaml" ] || [ -e "$ETC/tls/node.key" ]; }; then
  die 2 "$ETC holds this unit's identity (config.yaml, tls/node.key): a card image made from it would give every unit the same key; remove them first"
fi
# The venv's python is a link to this interpreter: it must be one the service user can run (a Python under
# /root, such as pyenv's, is not). Debian's own is the default.
if [ -z "$PYTHON" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3 || true); fi
fi
[ -n "$PYTHON" ] && [ -x "$PYTHON" ] || die 1 "no python3 found: sudo apt install python3 python3-venv"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
  die 1 "$PYTHON is older than Python 3.11 (Raspberry Pi OS 12 has 3.11): give another with --python"

MANIFEST="$SRC/models/manifest.json"
# Every model ships in this checkout's models/: check them before changing anything.
if ! problems=$("$PYTHON" - "$MANIFEST" <<'PY'
import hashlib, json, pathlib, sys
manifest = pathlib.Path(sys.argv[1])
for m in json.loads(manifest.read_text())["models"]:
    path = manifest.parent / m["file"]
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != m["sha256"]:
        print(f"models/{m['file']}")
PY
); then
  die 3 "cannot read $MANIFEST"
fi
if [ -n "$problems" ]; then
  die 3 "this checkout's models do not match models/manifest.json: $(echo "$problems" | paste -sd, -)
  (missing or changed; restore them with: git checkout -- models/)"
fi

# The release this checkout is (setup.cfg's version): /opt/edge-anpr/releases/<version>.
VERSION=$(sed -n 's/^version *= *//p' "$SRC/setup.cfg" | head -n 1)
[[ "$VERSION" =~ ^[0-9]+(\.[0-9]+){0,3}[a-z0-9.+-]{0,32}$ ]] || die 1 "cannot read the version from $SRC/setup.cfg"
RELEASE="$PREFIX/releases/$VERSION"

IS_PI=0
if grep -qs "Raspberry Pi" /proc/device-tree/model 2>/dev/null; then IS_PI=1; fi

# -- 1. System packages: Python venv, openssl (key + CSR), the camera stack from the OS (it must match libcamera).
PKGS=(python3-venv python3-pip openssl)
if [ "$IS_PI" -eq 1 ]; then PKGS+=(python3-picamera2); fi
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# -- 2. The service user: no login, no home, in group video for /dev/video*, /dev/media*, /dev/dma_heap/*.
if ! getent passwd "$USER_NAME" >/dev/null; then
  say "creating system user $USER_NAME"
  run useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$USER_NAME"
fi
run usermod -a -G video "$USER_NAME"

# -- 3. The runtime, in the release's own venv (system site packages on a Pi: picamera2 and libcamera come from
# the OS). Only the node's runtime dependencies (setup.cfg install_requires): no TensorFlow, no test tools.
VENV_OPTS=()
if [ "$IS_PI" -eq 1 ]; then VENV_OPTS+=(--system-site-packages); fi
run install -d -m 0755 "$PREFIX" "$PREFIX/releases" "$RELEASE"
[ -x "$RELEASE/venv/bin/python" ] || run "$PYTHON" -m venv "${VENV_OPTS[@]}" "$RELEASE/venv"
run "$RELEASE/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
run "$RELEASE/venv/bin/python" -m pip install -q --disable-pip-version-check "$SRC"

# -- 4. Models: copied from this checkout into the release, every one sha256-checked again where it lands.
run install -d -m 0755 "$RELEASE/models" "$PREFIX/share" "$PREFIX/docs"
run install -m 0644 "$MANIFEST" "$RELEASE/models/manifest.json"
while IFS= read -r f; do
  run install -D -m 0644 "$SRC/models/$f" "$RELEASE/models/$f"
done < <("$PYTHON" -c 'import json,sys; [print(m["file"]) for m in json.load(open(sys.argv[1]))["models"]]' "$MANIFEST")
run "$RELEASE/venv/bin/python" -m edge.runtime.check --models-dir "$RELEASE/models"
run chmod -R a+rX "$RELEASE"
# The release is complete: the updater only ever links to a release with .complete in it.
run sh -c "echo installed > '$RELEASE/.complete'"

# -- 4b. Switch to it: current and stable (the confirmed release the updater runs from) link to it, each made
# beside and renamed over (atomic: a power cut leaves the old link or the new one). venv and models link into
# current, so edge-anpr.service, the config's model paths and /usr/local/bin/edge-anpr keep working. A venv or
# models folder from before this layout is moved aside (into the release), not deleted.
for name in venv models; do
  if [ -d "$PREFIX/$name" ] && [ ! -L "$PREFIX/$name" ]; then run mv -T "$PREFIX/$name" "$RELEASE/$name.before-releases"; fi
done
for name in current stable; do
  run ln -sfn "releases/$VERSION" "$PREFIX/.$name.new"
  run mv -T "$PREFIX/.$name.new" "$PREFIX/$name"
done
run ln -sfn current/venv "$PREFIX/venv"
run ln -sfn current/models "$PREFIX/models"
run ln -sfn "$PREFIX/venv/bin/edge-anpr" "$BIN_LINK"

# -- 5. The service user must be able to run the venv's Python and load the package (not so when the venv
# links to a Python it cannot reach, or a folder on the way is closed to it).
if [ "$DRY" -eq 1 ]; then
  run runuser -u "$USER_NAME" -- "$PREFIX/venv/bin/python" -c "import edge.cli, cv2, paho.mqtt"
elif ! out=$(runuser -u "$USER_NAME" -- "$PREFIX/venv/bin/python" -c "import edge.cli, cv2, paho.mqtt" 2>&1); then
  die 1 "the service user $USER_NAME cannot run $PREFIX/venv/bin/python (it links to $(readlink -f "$PREFIX/venv/bin/python")):
  ${out##*$'\n'}
  Remove $PREFIX/venv and install again with a system Python (--python /usr/bin/python3)."
fi

# -- 6. Template, docs, config directory (root:edge-anpr 0750: the key inside is the service user's).
run install -m 0644 "$SRC/config/example.yaml" "$PREFIX/share/config.example.yaml"
run install -m 0644 "$SRC/docs/field-engineers.md" "$PREFIX/docs/field-engineers.md"
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [ "${#PROVISION[@]}" -gt 0 ]; then
  if [ -e "$ETC/config.yaml" ]; then
    say "$ETC/config.yaml exists: kept (provision by hand with --force to replace it)"
  else
    run "$BIN_LINK" provision --out "$ETC" --template "$PREFIX/share/config.example.yaml" \
      --no-input "${PROVISION[@]}"
  fi
fi

# -- 7. The units: verified, installed, enabled; the node started only once a config and certificate are there.
# edge-anpr-firstboot.service runs before the node when edge-anpr-node.yaml is on the boot partition.
for unit in edge-anpr.service edge-anpr-firstboot.service edge-anpr-update.service edge-anpr-update.timer \
            edge-anpr-update.path; do
  if command -v systemd-analyze >/dev/null 2>&1; then
    run systemd-analyze verify "$SRC/systemd/$unit" || say "systemd-analyze verify reported the above"
  fi
  run install -m 0644 "$SRC/systemd/$unit" "$UNITS/$unit"
done
SYSTEMD_UP=0
if [ -d /run/systemd/system ]; then SYSTEMD_UP=1; fi
if [ "$SYSTEMD_UP" -eq 1 ] || [ "$DRY" -eq 1 ]; then run systemctl daemon-reload; fi
run systemctl enable edge-anpr.service edge-anpr-firstboot.service
# The updater: daily, and at once on a release announcement; it does nothing without an update: section.
run systemctl enable edge-anpr-update.timer edge-anpr-update.path
if [ "$IMAGE" -eq 1 ]; then
  say "card image ready: no identity on it. Per unit, put edge-anpr-node.yaml on the boot partition"
  say "  (docs/field-engineers.md, 'Many units from one card image'); the unit takes it at first boot."
elif [ "$SYSTEMD_UP" -eq 0 ] && [ "$DRY" -eq 0 ]; then
  say "systemd is not running here (a chroot or a container): the units are installed and enabled, and start at boot"
elif [ "$START" -eq 1 ] && [ -e "$ETC/config.yaml" ] && [ -e "$ETC/tls/node.crt" ]; then
  run systemctl restart edge-anpr.service
  say "started; check with: systemctl status edge-anpr; journalctl -u edge-anpr -f"
else
  say "enabled, not started: provision the config and install tls/node.crt (docs/field-engineers.md), then"
  say "  sudo -u $USER_NAME edge-anpr selftest --config $ETC/config.yaml"
  say "  sudo systemctl start edge-anpr"
fi
