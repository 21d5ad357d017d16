#!/usr/bin/env bash
# The field engineers' path from a clone to a running node, as docs/field-engineers.md writes it, on a fresh
# Debian 12 root (tools/debian-root.sh) that has never seen this project: clone (the models are in it),
# install-node.sh, provision, the broker's and the node's certificates by config/mosquitto/README.md, selftest.
# A chroot has no systemd as PID 1, so instead of `systemctl start` it checks the installed units with
# `systemd-analyze verify` and runs the unit's ExecStart command as the service user (on the sample scene,
# since there is no camera) against Mosquitto with mosquitto.conf.example (TLS, client certificates, ACL),
# and the central subscriber (edge-anpr listen, CN central) must receive every read. Not part of CI.
#
# usage: sudo tools/check-install-chroot.sh [WORK_DIR]     (default /var/tmp/edge-anpr-install; a few minutes)
# Uses the committed HEAD of this checkout (a clone of it), models included.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
WORK=${1:-/var/tmp/edge-anpr-install}
ROOT="$WORK/root"
PY=${PYTHON:-$SRC/.venv/bin/python}
mkdir -p "$WORK"

echo "== on the build machine: a sample recording"
rm -rf "$WORK/usb" && mkdir -p "$WORK/usb"
"$PY" -m edge sample-scene "$WORK/usb/scene.mp4" >/dev/null

echo "== a fresh Debian 12 root"
bash tools/debian-root.sh amd64 "$ROOT" systemd,systemd-sysv,git,sudo
rm -rf "$ROOT/srv/edge-anpr.git" "$ROOT/media/usb" "$ROOT/root/edge-anpr" "$ROOT/root/pki"
git clone -q --bare "$SRC" "$ROOT/srv/edge-anpr.git"
cp -r "$WORK/usb" "$ROOT/media/usb"
cat > "$ROOT/root/field-engineer.sh" <<'INSIDE'
set -euo pipefail
step() { printf '\n== %s\n' "$*"; }
step "the broker host (here the same machine): mosquitto"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null

step "clone, install (docs/field-engineers.md section 1)"
cd /root && git clone -q /srv/edge-anpr.git edge-anpr && cd edge-anpr
mkdir -p /root/pki && cd /root/pki
# config/mosquitto/README.md step 1 (the CA) and step 2 (the broker; its host name here: localhost)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out edge-anpr-ca.crt -days 3650 -subj "/CN=edge-anpr CA" 2>/dev/null
install -d -m 0755 /etc/mosquitto/ca /etc/mosquitto/certs
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout /etc/mosquitto/certs/broker.key -out broker.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in broker.csr -CA edge-anpr-ca.crt -CAkey ca.key -CAcreateserial \
  -days 825 -out broker.crt -extfile server.ext 2>/dev/null
install -m 0644 broker.crt /etc/mosquitto/certs/broker.crt
install -m 0644 edge-anpr-ca.crt /etc/mosquitto/ca/edge-anpr-ca.crt
chown mosquitto: /etc/mosquitto/certs/broker.key && chmod 600 /etc/mosquitto/certs/broker.key
cd /root/edge-anpr
time sudo bash scripts/install-node.sh --site depot-north --camera gate1 --broker localhost:8883 \
  --ca /root/pki/edge-anpr-ca.crt
echo "edge-anpr on PATH: $(command -v edge-anpr) -> $(readlink -f "$(command -v edge-anpr)")"
du -sh /opt/edge-anpr/venv /opt/edge-anpr/models
/opt/edge-anpr/venv/bin/python -m pip list --disable-pip-version-check 2>/dev/null | grep -i -E "tensorflow|onnx|torch" &&
  { echo "FAIL: build-time tools on the unit"; exit 1; } || echo "no TensorFlow, onnx or torch on the unit"

step "sign the node's CSR, install its certificate (config/mosquitto/README.md step 3)"
cd /root/pki
cp /etc/edge-anpr/tls/node.csr node.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl req -in node.csr -noout -subject
openssl x509 -req -in node.csr -CA edge-anpr-ca.crt -CAkey ca.key -CAcreateserial \
  -days 825 -out node.crt -extfile client.ext 2>/dev/null
sudo install -m 0644 -o edge-anpr node.crt /etc/edge-anpr/tls/node.crt
# step 4: the central subscriber
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout central.key -out central.csr -subj "/CN=central" 2>/dev/null
chmod 600 central.key
openssl x509 -req -in central.csr -CA edge-anpr-ca.crt -CAkey ca.key -CAcreateserial \
  -days 825 -out central.crt -extfile client.ext 2>/dev/null

step "the broker, with config/mosquitto/mosquitto.conf.example and acl.example"
install -m 0644 /root/edge-anpr/config/mosquitto/acl.example /etc/mosquitto/edge-anpr.acl
sed 's/^log_dest syslog/log_dest stderr/' /root/edge-anpr/config/mosquitto/mosquitto.conf.example > /root/broker.conf
install -d -o mosquitto /var/lib/mosquitto /run/mosquitto
mosquitto -c /root/broker.conf 2>/root/broker.log &
BROKER=$!
sleep 2

step "selftest as the service user (docs section 4; no camera in a chroot)"
install -d -o edge-anpr -g edge-anpr -m 0700 /var/lib/edge-anpr   # what systemd's StateDirectory= makes
sudo -u edge-anpr edge-anpr selftest --config /etc/edge-anpr/config.yaml --skip camera || echo "selftest exit $?"

step "the installed units: systemd-analyze verify"
systemd-analyze verify /etc/systemd/system/edge-anpr.service /etc/systemd/system/edge-anpr-firstboot.service &&
  echo "verify: no complaints"
systemctl is-enabled edge-anpr.service edge-anpr-firstboot.service

step "ExecStart as the service user, on the sample scene instead of the camera; the central subscriber listening"
exec_start=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/edge-anpr.service)
echo "ExecStart: $exec_start"
/opt/edge-anpr/venv/bin/python - <<'PY'
import yaml
c = yaml.safe_load(open("/etc/edge-anpr/config.yaml"))
from datetime import datetime, timezone
# a recording stamped now: the node ages and expires reads by their frames' time, as a camera's
c["capture"] = {"source": "video", "path": "/media/usb/scene.mp4",
                "start_time": datetime.now(timezone.utc).isoformat()}
yaml.safe_dump(c, open("/etc/edge-anpr/check.yaml", "w"))
PY
chgrp edge-anpr /etc/edge-anpr/check.yaml && chmod 0640 /etc/edge-anpr/check.yaml
edge-anpr listen --host localhost --port 8883 --ca-file /root/pki/edge-anpr-ca.crt --cert-file /root/pki/central.crt \
  --key-file /root/pki/central.key --store /root/received.jsonl --print --count 4 --timeout 300 &
LISTEN=$!
sleep 2
time runuser -u edge-anpr -- ${exec_start/\/etc\/edge-anpr\/config.yaml//etc/edge-anpr/check.yaml}
wait "$LISTEN" || echo "listen exit $?"
echo "central subscriber received $(wc -l < /root/received.jsonl) reads"
kill "$BROKER"
[ "$(wc -l < /root/received.jsonl)" -ge 4 ] && echo "PASS: clone -> install -> provision -> certificate -> selftest -> node -> broker -> central"
INSIDE
bash tools/debian-root.sh --enter "$ROOT" /bin/bash /root/field-engineer.sh
