"""``edge-anpr selftest``: check a unit before leaving the pole, and print what to fix.

Checks, in order: config, state directory, disk, models (sha256 and load), camera (one frame),
broker (connect with the node's own credentials and publish one health message), clock. Prints a
pass/fail table and, for each failure, the fix. The exit code is that of the first failure:

  2 config   3 camera   4 models   5 broker   6 state directory   7 clock   8 disk

Run it as the service user, with the service stopped (it holds the camera):
``sudo systemctl stop edge-anpr; sudo -u edge-anpr /opt/edge-anpr/venv/bin/edge-anpr selftest``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edge.config import Config, load_config
from edge.errors import BrokerError, ConfigError, EdgeError, ModelError, SourceError, StateError

if TYPE_CHECKING:
    from edge.node.clocksync import ClockProbe

log = logging.getLogger(__name__)

EXIT_CONFIG, EXIT_CAMERA, EXIT_MODEL, EXIT_BROKER, EXIT_STATE = (
    ConfigError.exit_code, SourceError.exit_code, ModelError.exit_code, BrokerError.exit_code, StateError.exit_code
)
EXIT_CLOCK, EXIT_DISK = 7, 8  # selftest's own
CHECKS = ("config", "state", "disk", "models", "camera", "broker", "clock")
DEFAULT_MIN_FREE_MB = 200.0

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the table: what was checked, the outcome, and for a failure the fix and exit code."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    exit_code: int = 0


def _pass(name: str, detail: str) -> Check:
    return Check(name, "pass", detail)


def _skip(name: str, detail: str) -> Check:
    return Check(name, "skip", detail)


def _fail(name: str, detail: str, fix: str, code: int) -> Check:
    return Check(name, "fail", " ".join(detail.split()), fix, code)


# -- the checks ---------------------------------------------------------------------------------


def check_config_use(config: Config) -> Check:
    """What start-up refuses beyond the file itself: formats, the hotlist, key and certificate files."""
    from edge.clock import SystemClock
    from edge.node.preflight import first_error, preflight

    findings = preflight(config, SystemClock().now(), ("formats", "hotlist", "secrets"))
    refused = first_error(findings)
    if refused is not None:
        return _fail("config", "; ".join(f.message for f in findings if f.is_error),
                     "fix the file or setting named above; edge-anpr check-config lists every problem",
                     refused.exit_code)
    notes = "".join(f"; WARNING: {f.message}" for f in findings)
    return _pass("config", f"valid (site {config.node.site}, camera {config.node.camera}){notes}")


def check_state(config: Config) -> Check:
    path = config.node.state_dir
    try:
        from edge.app import ensure_state_dir

        state = ensure_state_dir(path)
        with tempfile.NamedTemporaryFile(dir=state, prefix=".selftest-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
    except (StateError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _fail("state", f"{path}: cannot write: {reason}",
                     f"the service creates it (StateDirectory=edge-anpr); by hand: sudo install -d -o edge-anpr "
                     f"-m 0700 {path}; a read-only file system needs fsck or a new SD card", EXIT_STATE)
    try:
        notes = state_notes(state, config)
    except StateError as exc:
        return _fail("state", str(exc), "see the message: the node refuses to start with this file", EXIT_STATE)
    return _pass("state", f"{path} is writable" + "".join(f"; WARNING: {n}" for n in notes))


def state_notes(state: Path, config: Config) -> list[str]:
    """Read the node's state files as start-up does: a refused sequence file fails (run exits 6); damage the node
    survives (a damaged outbox or audit tail, set aside at start) is a warning."""
    from edge.node.preflight import refuse_state_links
    from edge.node.sequence import SequenceFile
    from edge.outbox.salvage import damaged_reason
    from edge.outbox.store import FILENAME
    from edge.privacy.audit import last_good

    refuse_state_links(state, config)
    SequenceFile(state / "seq").load()
    notes: list[str] = []
    damage = damaged_reason(state / FILENAME)
    if damage is not None:
        notes.append(f"{FILENAME} is damaged ({damage}); the node will set it aside and start a new one with "
                     "what SQLite can still read from it")
    audit = state / config.privacy.audit_file
    if audit.is_file():
        good_end, _ = last_good(audit)
        if good_end < audit.stat().st_size:
            notes.append(f"{audit.name} ends in {audit.stat().st_size - good_end} damaged bytes; the node will set "
                         "them aside and record a break")
    if sorted(state.glob(FILENAME + ".damaged-*")):
        notes.append(f"damaged outbox file(s) kept in {state} (their reads were not published)")
    return notes


def check_disk(config: Config, min_free_mb: float) -> Check:
    from edge.node.health import disk_free_mb

    free = disk_free_mb(config.node.state_dir)
    if free is None:
        return _skip("disk", f"cannot measure free space of {config.node.state_dir}")
    if free < min_free_mb:
        return _fail("disk", f"{free:.0f} MiB free on {config.node.state_dir}, need {min_free_mb:.0f} MiB",
                     "free space (journalctl --vacuum-size=100M, apt clean) or lower outbox.max_bytes", EXIT_DISK)
    return _pass("disk", f"{free:.0f} MiB free on {config.node.state_dir}")


def check_models(config: Config) -> Check:
    from edge.runtime import load_manifest, open_model

    wanted = [(config.read.model, config.read.manifest)]
    if "wpod" in (config.detect.backend, config.detect.second_look):
        wanted.append((config.detect.model, config.detect.manifest))
    if config.privacy.images_may_leave:
        wanted.append((config.privacy.face_model, config.read.manifest))
        wanted.append((config.privacy.face_check_model, config.read.manifest))
    loaded = []
    try:
        for path, manifest_path in wanted:
            model = open_model(path, load_manifest(manifest_path), threads=1)
            loaded.append(f"{model.entry.name} {model.entry.sha256[:12]}")
    except EdgeError as exc:
        return _fail("models", str(exc), "reinstall the models from the release's checkout: sudo "
                     "scripts/install-node.sh (it copies models/ and checks every sha256); never edit a model file",
                     EXIT_MODEL)
    return _pass("models", "sha256 ok and loaded: " + ", ".join(loaded))


def check_camera(config: Config, timeout_s: float) -> Check:
    """One frame from the configured source, in a thread so a hung camera cannot hang the self-test."""
    from edge.app import build_source
    from edge.clock import SystemClock

    result: dict[str, object] = {}

    def grab() -> None:
        try:
            frames = build_source(config, SystemClock()).frames()
            try:
                frame = next(frames)
                result["shape"] = frame.image.shape
            finally:
                close = getattr(frames, "close", None)
                if callable(close):
                    close()  # a generator's finally releases the camera
        except StopIteration:
            result["error"] = "the source ended before its first frame"
        except Exception as exc:  # any camera failure is this check's answer  # noqa: BLE001
            result["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=grab, name="selftest-camera", daemon=True)
    thread.start()
    thread.join(timeout_s)
    where = config.capture.path or "the Pi camera"
    fix = ("check the ribbon cable and that `rpicam-hello --list-cameras` lists the camera (stop the service first: "
           "it holds the camera)" if config.capture.source == "picamera"
           else f"check capture.path ({config.capture.path}) exists and is readable, or the stream URL answers")
    if thread.is_alive():
        return _fail("camera", f"no frame from {where} within {timeout_s:.0f} s", fix, EXIT_CAMERA)
    if "error" in result:
        return _fail("camera", f"{config.capture.source} {where}: {result['error']}", fix, EXIT_CAMERA)
    shape = result["shape"]
    assert isinstance(shape, tuple)
    return _pass("camera", f"one {shape[1]}x{shape[0]} frame from {config.capture.source} {where}")


def check_broker(config: Config, timeout_s: float) -> Check:
    if config.mqtt is None:
        return _skip("broker", "no mqtt section: reads stay in the outbox")
    return probe_broker(config, timeout_s)


class _BrokerProbe:
    """One connection with the node's credentials, its own client id + "-selftest" (the running service's
    session is untouched), and one minimal, schema-valid, non-retained health message at QoS 1: a
    successful PUBACK shows the broker's ACL lets this node write its topics."""

    def __init__(self, config: Config, timeout_s: float) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        assert config.mqtt is not None
        self.config, self.mqtt, self.timeout_s = config, config.mqtt, timeout_s
        self.where = f"{self.mqtt.host}:{self.mqtt.port}"
        from edge.publish.mqtt import default_client_id

        client_id = default_client_id(self.mqtt, config.node) + "-selftest"
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.client.connect_timeout = timeout_s
        self.connected, self.acked = threading.Event(), threading.Event()
        self.outcome: dict[str, str] = {}
        self.failed: dict[str, bool] = {}
        self.client.on_connect = lambda c, u, f, reason, p: self._record("connack", reason, self.connected)
        self.client.on_publish = lambda c, u, mid, reason, p: self._record("puback", reason, self.acked)
        self.tls_fix = (f"check mqtt.tls: the CA file must be the one that signed the broker's certificate, whose "
                        f"name must match mqtt.host ({self.mqtt.host}); the node's certificate must be signed by "
                        f"the broker's CA")

    def _record(self, key: str, reason: object, event: threading.Event) -> None:
        self.outcome[key] = str(reason)
        self.failed[key] = bool(getattr(reason, "is_failure", True))  # "No matching subscribers" is a success
        event.set()

    def credentials(self) -> Check | None:
        from edge.publish.mqtt import apply_credentials

        try:
            apply_credentials(self.client, self.mqtt)  # exactly as the node sets them
        except ConfigError as exc:
            return _fail("broker", str(exc), "fix the file named above (chmod 600 for a key)", EXIT_BROKER)
        return None

    def connect(self) -> Check | None:
        try:
            self.client.connect(self.mqtt.host, self.mqtt.port, keepalive=max(5, int(self.timeout_s) + 5))
        except ssl.SSLError as exc:
            return _fail("broker", f"TLS handshake with {self.where} failed: {exc.reason or exc}", self.tls_fix,
                         EXIT_BROKER)
        except OSError as exc:
            return _fail("broker", f"cannot reach {self.where}: {exc.strerror or exc}",
                         f"check the network, that the broker runs, and mqtt.host/mqtt.port (try: nc -vz "
                         f"{self.mqtt.host} {self.mqtt.port})", EXIT_BROKER)
        return None

    def exchange(self) -> Check:
        from edge import __version__
        from edge.clock import SystemClock
        from edge.publish.schema import Schemas, iso_utc_ms, schema_id
        from edge.publish.topics import Topics

        node, t = self.config.node, self.timeout_s
        if not self.connected.wait(t):
            return _fail("broker", f"{self.where} accepted TCP but sent no CONNACK in {t:.0f} s", self.tls_fix,
                         EXIT_BROKER)
        if self.failed["connack"]:
            return _fail("broker", f"{self.where} refused the node: {self.outcome['connack']}",
                         f"the broker must accept this node's certificate (CN '{node.site}/{node.camera}') or "
                         f"username; check its CA and ACL", EXIT_BROKER)
        body = {"schema": schema_id("health"), "site": node.site, "camera": node.camera,
                "time": iso_utc_ms(SystemClock().now()), "versions": {"software": __version__}}
        Schemas().validate("health", body)
        topic = Topics.for_node(self.mqtt, node).health
        self.client.publish(topic, json.dumps(body, separators=(",", ":")).encode(), qos=1, retain=False)
        if not self.acked.wait(t):
            return _fail("broker", f"no PUBACK from {self.where} for {topic} in {t:.0f} s",
                         "check the broker's log and its queue limits", EXIT_BROKER)
        if self.failed["puback"]:
            return _fail("broker", f"{self.where} refused a publish to {topic}: {self.outcome['puback']}",
                         f"the broker ACL must let '{node.site}/{node.camera}' write "
                         f"{self.mqtt.topic_prefix}/{node.site}/{node.camera}/#", EXIT_BROKER)
        tls = "TLS, client certificate" if self.mqtt.tls is not None else "PLAIN TCP (lab mode)"
        return _pass("broker", f"{self.where} accepted the node ({tls}) and acknowledged a publish to {topic}")

    def run(self) -> Check:
        failed = self.credentials() or self.connect()
        if failed is not None:
            return failed
        self.client.loop_start()
        try:
            return self.exchange()
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def probe_broker(config: Config, timeout_s: float) -> Check:
    return _BrokerProbe(config, timeout_s).run()


def check_clock(config: Config, probe: ClockProbe | None = None) -> Check:
    from edge.node.clocksync import ClockMonitor, SystemClockProbe, why_bad

    state = ClockMonitor(probe or SystemClockProbe(), config.clock).refresh()
    offset = "unknown" if state.offset_ms is None else f"{state.offset_ms:+.1f} ms"
    if state.synced is None:
        return _skip("clock", "this platform cannot tell whether the clock is synchronised")
    because = why_bad(state, config.clock.max_offset_ms)
    if because is not None:
        return _fail("clock", f"{because} ({state.source}: {state.detail})",
                     "give the unit NTP: check the network, `timedatectl timesync-status` or `chronyc sources`; "
                     f"until then reads are {'held back' if config.clock.on_unsynced == 'hold' else 'flagged'}",
                     EXIT_CLOCK)
    return _pass("clock", f"synchronised ({state.source}, offset {offset})")


# -- the command --------------------------------------------------------------------------------


def run_checks(config: Config, *, skip: frozenset[str] = frozenset(), camera_timeout_s: float = 15.0,
               broker_timeout_s: float = 10.0, min_free_mb: float = DEFAULT_MIN_FREE_MB,
               clock_probe: ClockProbe | None = None) -> list[Check]:
    steps: dict[str, Callable[[], Check]] = {
        "state": lambda: check_state(config),
        "disk": lambda: check_disk(config, min_free_mb),
        "models": lambda: check_models(config),
        "camera": lambda: check_camera(config, camera_timeout_s),
        "broker": lambda: check_broker(config, broker_timeout_s),
        "clock": lambda: check_clock(config, clock_probe),
    }
    results = [check_config_use(config)]
    for name, step in steps.items():
        results.append(_skip(name, "skipped (--skip)") if name in skip else step())
    return results


def exit_code(results: list[Check]) -> int:
    return next((c.exit_code for c in results if c.status == "fail"), 0)


def render(results: list[Check]) -> str:
    width = max(len(c.name) for c in results)
    lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
    lines += [f"{c.name:<{width}}  {c.status.upper():<6}  {c.detail}" for c in results]
    failed = [c for c in results if c.status == "fail"]
    if failed:
        lines.append("")
        lines += [f"FIX {c.name} (exit {c.exit_code}): {c.fix}" for c in failed]
        lines.append(f"selftest FAILED: {', '.join(c.name for c in failed)}")
    else:
        lines.append("selftest passed")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "exit codes: 0 all passed, 2 config, 3 camera, 4 models, 5 broker, 6 state dir, 7 clock, 8 disk"
    parser.add_argument("--config", "-c", default="/etc/edge-anpr/config.yaml",
                        help="config file (default: %(default)s)")
    parser.add_argument("--skip", action="append", default=[], choices=CHECKS[1:], help="skip a check (repeatable)")
    parser.add_argument("--camera-timeout", type=float, default=15.0, help="seconds to wait for a frame")
    parser.add_argument("--broker-timeout", type=float, default=10.0, help="seconds to wait for the broker")
    parser.add_argument("--min-free-mb", type=float, default=DEFAULT_MIN_FREE_MB, help="least free disk (MiB)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        lines = [line.strip(" -") for line in str(exc).splitlines()]
        more = f" (+{len(lines) - 2} more)" if len(lines) > 2 else ""  # the first bad key, named
        results = [_fail("config", "; ".join(lines[:2]) + more,
                         f"run: edge-anpr check-config {args.config}  (it lists every bad key)", EXIT_CONFIG)]
    else:
        results = run_checks(config, skip=frozenset(args.skip), camera_timeout_s=args.camera_timeout,
                             broker_timeout_s=args.broker_timeout, min_free_mb=args.min_free_mb)
    if args.json:
        print(json.dumps({"config": args.config, "exit_code": exit_code(results),
                          "checks": [asdict(c) for c in results]}, indent=2))
    else:
        print(f"edge-anpr selftest: {args.config}")
        print(render(results))
    sys.stdout.flush()
    return exit_code(results)
