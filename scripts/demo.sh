#!/usr/bin/env bash
# The main job, end to end on a fresh machine: set up (scripts/setup.sh), render the synthetic sample scene,
# start a local Mosquitto on a free loopback port, start the reference central subscriber, replay the scene
# through the production pipeline (detect, read, track, redact faces, allow-listed payload, durable outbox,
# MQTT), and show the reads as the subscriber receives them, with the redacted images it saved.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

OUT=out/demo
rm -rf "$OUT"
mkdir -p "$OUT"
BIN=.venv/bin

echo "== rendering the sample scene"
"$BIN/edge-anpr" sample-scene "$OUT/scene.mp4"

PORT=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$OUT/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
CONF
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$MOSQUITTO" -c "$OUT/mosquitto.conf" 2>"$OUT/mosquitto.log" &
BROKER_PID=$!
LISTEN_PID=""
cleanup() {
  [ -n "$LISTEN_PID" ] && kill "$LISTEN_PID" 2>/dev/null || true
  kill "$BROKER_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
  "$BIN/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
echo "== local Mosquitto on 127.0.0.1:$PORT"

echo "== central subscriber (edge-anpr listen) writing $OUT/received.jsonl and images to $OUT/images"
"$BIN/edge-anpr" listen --host 127.0.0.1 --port "$PORT" --insecure-lab-mode \
  --out "$OUT/received.jsonl" --images "$OUT/images" --print &
LISTEN_PID=$!
sleep 1

echo "== replaying $OUT/scene.mp4 through the node pipeline"
"$BIN/edge-anpr" replay "$OUT/scene.mp4" --config config/demo.yaml --broker "127.0.0.1:$PORT" \
  --state-dir "$OUT/state" --truth "$OUT/scene.truth.csv" --report "$OUT/report"
sleep 2
kill -TERM "$LISTEN_PID" 2>/dev/null || true
wait "$LISTEN_PID" 2>/dev/null || true
LISTEN_PID=""

echo
echo "== done"
echo "reads received by the central subscriber: $OUT/received.jsonl ($(wc -l < "$OUT/received.jsonl") reads)"
echo "redacted images as received:              $OUT/images/"
echo "replay report (truth vs reads):           $OUT/report/index.html"
