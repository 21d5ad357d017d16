"""Configuration pushed from the centre: checked as ``check-config`` checks a file, applied by a restart, and rolled
back by the node itself when it does not come back healthy.

The service cannot write ``/etc/edge-anpr``, so a pushed config lives in ``node.state_dir``:

``config.pushed.yaml``
    the pushed config: one comment line (``# anpr.config-push/1 {...}``: target, version, sha256 of the YAML, the
    sha256 of the local file it was pushed over, when it was applied and by when it must be healthy), then the YAML
    exactly as the centre sent it. The whole file is what was checked, so what the node loads is what passed.
``config.good.yaml``
    the last good pushed config, kept while a newer one is on trial (absent: the last good one is the local file).
``fleet/config-state.json``
    ``anpr.config-state/1``: the pushed version confirmed healthy, the starts of the one on trial, the rollbacks.

**Precedence at start** (:meth:`ConfigPushes.select`): ``run --config FILE`` reads FILE (the local config) first;
``config.pushed.yaml`` in its ``node.state_dir`` is used instead when it is there and was pushed over FILE as it is
now. A local file changed since the push (an engineer's edit, a re-provision) is the newer one: it wins and the
pushed files are removed.

**Trial and rollback.** A pushed config runs on trial until the node has processed a frame, is connected and has
published health (:meth:`ConfigPushes.health_published`); then it is confirmed. It is rolled back to the last good
config, and the rollback reported in health (``fleet.config.rolled_back`` and a ``rolled_back`` refusal), when start-up
fails with it (the service exits 75 so systemd restarts it with the good one), when it is not healthy by its deadline
(``fleet.config_startup_s`` of the config it replaced, after it was applied), or on the 4th start with it not yet
confirmed (a crash loop). Every file is replaced by ``rename`` after ``fsync``: a SIGKILL or power cut at any moment
leaves the old config or the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from edge.clock import Clock, iso_ms
from edge.config import Config, load_config
from edge.errors import ConfigError
from edge.files import fsync_dir, write_atomic
from edge.fleet.manifest import Manifest, Refusal

log = logging.getLogger(__name__)

PUSHED = "config.pushed.yaml"
GOOD = "config.good.yaml"
STATE = "config-state.json"  # in <state_dir>/fleet
HEADER = "anpr.config-push/1"
STATE_FORMAT = "anpr.config-state/1"
MAX_STARTS = 3  # starts with a config on trial; the next start rolls back (a crash loop)
RESTART_EXIT = 75  # run's exit status when it stops to restart with another config (systemd: Restart=on-failure)

# Fields the centre may not change: the node's identity, where it keeps state, its certificate and key, the keys it
# pins. A push changing one (or removing its section) is refused naming it; they change by re-provisioning.
FORBIDDEN = (
    "node.site", "node.camera", "node.state_dir", "mqtt.tls.ca_file", "mqtt.tls.cert_file", "mqtt.tls.key_file",
    "fleet.public_key_file", "fleet.hotlist_keys_file", "update.root_file",
)


class Restarter(Protocol):
    def restart(self) -> None: ...


class RestartRequest:
    """The service's restarter: stop the frame loop; ``run`` then exits :data:`RESTART_EXIT` and systemd restarts it."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self.requested = False

    def restart(self) -> None:
        self.requested = True
        self._stop.set()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def field_value(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def forbidden_changes(running: Config, pushed: Config) -> list[str]:
    """The fields of :data:`FORBIDDEN` whose value ``pushed`` changes, each as ``field: 'new' would replace 'old'``."""
    out = []
    for name in FORBIDDEN:
        old, new = field_value(running, name), field_value(pushed, name)
        if old != new:
            out.append(f"{name}: {new!r} would replace {old!r}")
    return out


def fill_own_fields(doc: dict[str, Any], running: Config) -> bool:
    """Fill in each :data:`FORBIDDEN` field that a pushed document leaves out with the node's own value (so one config
    can go to a group); a top-level section it leaves out stays out (``node`` is always there). True when it filled."""
    filled = False
    for name in FORBIDDEN:
        value = field_value(running, name)
        first, *middle, leaf = name.split(".")
        if value is None or (first not in doc and first != "node"):
            continue
        section = doc.setdefault(first, {})
        for part in middle:
            section = section.setdefault(part, {}) if isinstance(section, dict) else None
        if isinstance(section, dict) and leaf not in section:
            section[leaf] = value
            filled = True
    return filled


@dataclass(frozen=True, slots=True)
class Header:
    """The first line of ``config.pushed.yaml`` (and ``config.good.yaml``)."""

    target: str
    version: int
    sha256: str  # of the YAML as pushed
    base: str  # sha256 of the local config file it was pushed over
    applied_at: str
    deadline: str  # healthy by then, or rolled back

    def line(self) -> bytes:
        return f"# {HEADER} {json.dumps(asdict(self), sort_keys=True, separators=(',', ':'))}\n".encode()


def read_header(path: Path) -> Header:
    with path.open("rb") as f:
        first = f.readline(4096).decode("utf-8")
    prefix = f"# {HEADER} "
    if not first.startswith(prefix):
        raise ValueError(f"{path} does not start with its '{prefix.strip()}' line")
    doc = json.loads(first[len(prefix):])
    return Header(**{k: doc[k] for k in Header.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class ConfigState:
    confirmed: tuple[str, int] | None = None  # (target, version) of the pushed config confirmed healthy
    starts: int = 0  # starts of the config on trial
    rollbacks: int = 0
    rolled_back: dict[str, Any] | None = None  # the last: target, version, reason, detail, time

    def as_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "confirmed": list(self.confirmed) if self.confirmed else None,
                "starts": self.starts, "rollbacks": self.rollbacks, "rolled_back": self.rolled_back}


@dataclass(frozen=True, slots=True)
class Selection:
    """The config a start runs with, and where it came from."""

    config: Config
    path: Path
    header: Header | None = None  # None: the local file
    trial: bool = False


@dataclass
class _Health:
    started: bool = False
    connected: bool = False
    published: bool = False
    notes: list[str] = field(default_factory=list)


class ConfigPushes:
    """The pushed config of one node: select at start, apply a push, confirm, roll back (thread-safe)."""

    def __init__(self, local_path: Path, local: Config, *, restarter: Restarter, clock: Clock) -> None:
        self.local_path = local_path
        self.local = local
        self.state_dir = Path(local.node.state_dir)
        self.pushed, self.good = self.state_dir / PUSHED, self.state_dir / GOOD
        self._state_path = self.state_dir / "fleet" / STATE
        self._restarter = restarter
        self._clock = clock  # the wall clock (a replayed recording's clock is not: deadlines are real time)
        self._lock = threading.RLock()
        self.selection: Selection | None = None
        self.running: Config = local
        self._health = _Health()

    # -- state ------------------------------------------------------------------------------------------------

    def state(self) -> ConfigState:
        try:
            doc = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ConfigState()
        except (OSError, ValueError) as exc:
            log.error("config push: %s is unreadable (%s); starting its count again", self._state_path, exc)
            return ConfigState()
        confirmed = doc.get("confirmed")
        return ConfigState(confirmed=(str(confirmed[0]), int(confirmed[1])) if confirmed else None,
                           starts=int(doc.get("starts", 0)), rollbacks=int(doc.get("rollbacks", 0)),
                           rolled_back=doc.get("rolled_back"))

    def _save(self, state: ConfigState) -> None:
        self._state_path.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomic(self._state_path, (json.dumps(state.as_dict(), sort_keys=True) + "\n").encode())
        fsync_dir(self._state_path.parent)

    # -- start ------------------------------------------------------------------------------------------------

    def select(self) -> Selection:
        """The config this start runs with (see the module's precedence); rolls back a pushed config on trial that
        started too often, is past its deadline or no longer loads."""
        with self._lock:
            selection = self._select(self._clock.now())
            self.selection, self.running = selection, selection.config
            return selection

    def _select(self, now: datetime) -> Selection:
        for stale in [*self.state_dir.glob(".config.*.tmp"), *self._state_path.parent.glob("config-*-v*.yaml")]:
            stale.unlink(missing_ok=True)  # a write or a check cut short: the file it was to replace is intact
        local = Selection(self.local, self.local_path)
        if not self.pushed.exists():
            return local
        try:
            header = read_header(self.pushed)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.error("config push: %s is unreadable (%s); using %s", self.pushed, exc, self.local_path)
            self._remove_pushed()
            return local
        if header.base != sha256_file(self.local_path):
            log.warning("config push: %s changed after version %d was pushed over it (%s): the local file is newer and "
                        "is used; the pushed config is removed", self.local_path, header.version, header.target)
            self._remove_pushed()
            return local
        return self._select_pushed(header, now)

    def _select_pushed(self, header: Header, now: datetime) -> Selection:
        state = self.state()
        rolled = state.rolled_back or {}
        if (rolled.get("target"), rolled.get("version")) == (header.target, header.version):
            self._restore_good()  # a rollback cut short after it was recorded
            return self._select(now)
        trial = state.confirmed != (header.target, header.version)
        if trial:
            state = replace(state, starts=state.starts + 1)
            self._save(state)
            if state.starts > MAX_STARTS:
                return self._rolled(header, "crash_loop", f"started {MAX_STARTS} times with it without reporting "
                                    "healthy", now)
            if now >= _time(header.deadline):
                return self._rolled(header, "unhealthy", f"not healthy by {header.deadline}", now)
        try:
            config = load_config(self.pushed)
        except ConfigError as exc:
            return self._rolled(header, "invalid_config", str(exc), now)
        changed = forbidden_changes(self.local, config)
        if changed:
            return self._rolled(header, "forbidden_field", "; ".join(changed), now)
        log.info("config push: running %s version %d of %s (%s)", self.pushed, header.version, header.target,
                 f"on trial, start {state.starts}" if trial else "confirmed")
        return Selection(config, self.pushed, header, trial)

    def _rolled(self, header: Header, reason: str, detail: str, now: datetime) -> Selection:
        self._rollback(header, reason, detail, now)
        return self._select(now)

    # -- applying a push --------------------------------------------------------------------------------------

    def apply(self, manifest: Manifest, yaml: bytes) -> Refusal | None:
        """Check ``yaml`` as check-config does and against :data:`FORBIDDEN`; when it passes, make it the pushed
        config (the running one kept as the good one when confirmed) and restart. A refusal changes nothing."""
        from edge.node.preflight import check_config_file

        def refuse(reason: Any, detail: str) -> Refusal:
            return Refusal(reason, detail, manifest.target, manifest.kind, manifest.version)

        now = self._clock.now()
        with self._lock:
            startup = timedelta(seconds=self.running.fleet.config_startup_s if self.running.fleet else 120.0)
            header = Header(manifest.target, manifest.version, hashlib.sha256(yaml).hexdigest(),
                            sha256_file(self.local_path), iso_ms(now), iso_ms(now + startup))
            incoming = self.state_dir / "fleet" / f"config-{manifest.target.replace('/', '.')}-v{manifest.version}.yaml"
            incoming.parent.mkdir(mode=0o700, exist_ok=True)
            try:
                try:
                    write_atomic(incoming, header.line() + self._own_fields_in(yaml, manifest))
                    config, _ = check_config_file(incoming, now)
                except ConfigError as exc:
                    return refuse("invalid_config", str(exc))
                changed = forbidden_changes(self.running, config)
                if changed:
                    return refuse("forbidden_field", "; ".join(changed) + " (the centre cannot change a node's "
                                  "identity, state directory, certificate and key paths or pinned keys: re-provision)")
                self._keep_good()
                self._save(replace(self.state(), starts=0))
                os.replace(incoming, self.pushed)
                fsync_dir(self.state_dir)
            finally:
                incoming.unlink(missing_ok=True)
            log.warning("config push: applied version %d for %s; restarting with it (healthy by %s, or rolled back)",
                        manifest.version, manifest.target, header.deadline)
            return None

    def restart(self) -> None:
        self._restarter.restart()

    def _own_fields_in(self, yaml: bytes, manifest: Manifest) -> bytes:
        """The pushed YAML, with the node's own identity, paths and keys filled in where it leaves them out (then
        written out again: comments are lost); as pushed when it names them all. Unreadable YAML: ConfigError."""
        import yaml as pyyaml

        from edge.config.safe_yaml import decode, parse_yaml

        origin = f"pushed config {manifest.target} v{manifest.version}"
        doc = parse_yaml(decode(yaml, origin), origin)
        if not isinstance(doc, dict) or not fill_own_fields(doc, self.running):
            return yaml
        return pyyaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")

    def _keep_good(self) -> None:
        """The rollback target of the next push: the pushed config when it was confirmed, else what was already
        kept (the one on trial is not good yet); none (the local file) when no config was pushed."""
        if not self.pushed.exists():
            self.good.unlink(missing_ok=True)
            return
        if self.selection is not None and self.selection.trial and self.selection.path == self.pushed:
            return
        write_atomic(self.good, self.pushed.read_bytes())

    # -- trial ------------------------------------------------------------------------------------------------

    @property
    def on_trial(self) -> bool:
        with self._lock:
            return self.selection is not None and self.selection.trial

    def health_published(self, *, started: bool, connected: bool) -> None:
        """Health was just published: a config on trial is confirmed once the node also started and is connected."""
        with self._lock:
            self._health.started |= started
            self._health.connected |= connected
            self._health.published = True
            if self.on_trial and started and connected:
                self.confirm()

    def confirm(self) -> None:
        with self._lock:
            sel = self.selection
            if sel is None or sel.header is None or not sel.trial:
                return
            self._save(replace(self.state(), confirmed=(sel.header.target, sel.header.version), starts=0))
            self.selection = replace(sel, trial=False)
            log.info("config push: version %d of %s is healthy: confirmed", sel.header.version, sel.header.target)

    def deadline_s(self) -> float | None:
        """Seconds left for the config on trial to report healthy (None when none is on trial)."""
        now = self._clock.now()
        with self._lock:
            sel = self.selection
            if sel is None or sel.header is None or not sel.trial:
                return None
            return max(0.0, (_time(sel.header.deadline) - now).total_seconds())

    def expire(self) -> bool:
        """The deadline passed: roll back a config still on trial and restart; True when it did."""
        now = self._clock.now()
        with self._lock:
            sel = self.selection
            if sel is None or sel.header is None or not sel.trial:
                return False
            h = self._health
            missing = [what for what, ok in (("no frame processed", h.started), ("not connected to the broker",
                                             h.connected), ("no health published", h.published)) if not ok]
            self._rollback(sel.header, "unhealthy", f"not healthy by {sel.header.deadline}: "
                           + (", ".join(missing) or "not confirmed"), now)
        self.restart()
        return True

    def start_failed(self, error: Exception) -> bool:
        """Start-up (or the run before it was healthy) failed with the config on trial: roll it back; True when it
        did (the service then exits :data:`RESTART_EXIT` to start again with the good one)."""
        with self._lock:
            sel = self.selection
            if sel is None or sel.header is None or not sel.trial:
                return False
            self._rollback(sel.header, "start_failed", " ".join(str(error).split()), self._clock.now())
            return True

    def _rollback(self, header: Header, reason: str, detail: str, now: datetime) -> None:
        """Record the rollback, then put the good config back (a rollback cut short is finished at the next start)."""
        entry = {"target": header.target, "version": header.version, "reason": reason, "detail": detail[:300],
                 "time": iso_ms(now)}
        state = self.state()
        self._save(replace(state, starts=0, rollbacks=state.rollbacks + 1, rolled_back=entry))
        self._restore_good()
        log.error("config push: ROLLED BACK version %d of %s: %s (%s)", header.version, header.target, reason, detail)
        if self.selection is not None and self.selection.header == header:
            self.selection = replace(self.selection, trial=False)

    def _restore_good(self) -> None:
        if self.good.exists():
            os.replace(self.good, self.pushed)
        else:
            self.pushed.unlink(missing_ok=True)
        fsync_dir(self.state_dir)

    def _remove_pushed(self) -> None:
        self.pushed.unlink(missing_ok=True)
        self.good.unlink(missing_ok=True)
        fsync_dir(self.state_dir)

    # -- health -----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``fleet.config`` of health: the config it runs (local or pushed: target, version, trial or confirmed)
        and the rollbacks."""
        with self._lock:
            sel, state = self.selection, self.state()
            body: dict[str, Any] = {"source": "local"}
            if sel is not None and sel.header is not None:
                body = {"source": "pushed", "target": sel.header.target, "version": sel.header.version,
                        "state": "trial" if sel.trial else "confirmed"}
            if state.rollbacks:
                body["rollbacks"] = state.rollbacks
            if state.rolled_back:
                body["rolled_back"] = state.rolled_back
            return body

    def rolled_back(self) -> dict[str, Any] | None:
        with self._lock:
            return self.state().rolled_back


def watch_deadline(pushes: ConfigPushes, stop: threading.Event) -> threading.Thread | None:
    """A thread that rolls the config on trial back at its deadline unless it was confirmed or ``stop`` is set."""
    left = pushes.deadline_s()
    if left is None:
        return None

    def wait() -> None:
        if not stop.wait(left) and pushes.on_trial:
            pushes.expire()

    thread = threading.Thread(target=wait, name="config-trial", daemon=True)
    thread.start()
    return thread


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))

