"""Over-the-air updates on the node: A/B install of a verified release, confirmation, rollback, power-cut recovery.

Layout under ``update.install_root`` (``/opt/edge-anpr``)::

    releases/<version>/          one per release: venv/, models/, release.json, .complete (written last)
    current -> releases/<v>      what the service runs (switched atomically: a new link renamed over it)
    stable  -> releases/<v>      the last confirmed release (the updater itself runs from it)
    update.json                  the step in flight (``anpr.update-state/1``, written atomically), read by health
    tuf/                         python-tuf's metadata cache and downloads

One run (:meth:`NodeUpdater.run`): recover from whatever a power cut left, ask the repository which release this
node should run (:class:`~edge.node.update_fetch.ReleaseClient`), check disk space, download and verify the bundle,
unpack it into its own ``releases/<version>`` with its own venv, switch ``current``, restart the service, run the
new release's ``selftest`` and watch its health for ``update.healthy_s``; only then is it confirmed (``stable``
follows, releases older than the previous one are removed). Any failure switches ``current`` back to the previous
release, restarts it and records the failure (reason and detail) for health; that release is not tried again
until the centre publishes another.

A power cut at any step leaves ``current`` naming a complete release: a release directory is only linked once
``.complete`` is on disk, and the link is replaced by ``rename``. At start :meth:`NodeUpdater.recover` finishes or
undoes the step ``update.json`` names.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from edge.clock import iso_ms
from edge.files import fsync_dir, write_atomic
from edge.fleet.release import RELEASE_FORMAT, RELEASE_JSON, check_version
from edge.node.update_fetch import ReleaseClient, UpdateError, Wanted
from edge.node.update_state import (
    COMPLETE,
    Failure,
    UpdateState,
    is_complete,
    linked_version,
    read_state,
    switch_link,
    write_state,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # starts of an unconfirmed release (power cuts, crashes) before it is rolled back


# -- what the updater calls out to ------------------------------------------------------------------------------------


class Restarter(Protocol):
    def restart(self) -> None: ...


class SelfTest(Protocol):
    def check(self, release: Path) -> str | None:
        """None when the release passes; else what failed."""


class HealthProbe(Protocol):
    def problem(self, version: str) -> str | None:
        """None while the node runs ``version`` healthy; else why not (yet)."""


@dataclass(frozen=True, slots=True)
class CommandRestarter:
    command: Sequence[str]

    def restart(self) -> None:
        done = subprocess.run(list(self.command), capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log.error("update: %s failed: %s", " ".join(self.command), done.stderr.strip()[-300:])


def as_service_user(user: str, state_dir: str, timeout_s: float) -> list[str]:
    """``systemd-run`` prefix: the command as ``user`` in a transient service sandboxed as the node's own unit (the
    system read-only but the state directory, no home, a private /tmp, no devices), its output piped back."""
    props = ("ProtectSystem=strict", f"ReadWritePaths=-{state_dir}", "ProtectHome=yes", "PrivateTmp=yes",
             "PrivateDevices=yes", "NoNewPrivileges=yes", "UMask=0077", "Environment=PYTHONDONTWRITEBYTECODE=1",
             f"RuntimeMaxSec={max(1, int(timeout_s))}")
    return ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", f"--uid={user}",
            *(f"--property={p}" for p in props)]


@dataclass(frozen=True, slots=True)
class CommandSelfTest:
    """The release's own ``edge-anpr selftest`` (camera skipped: the restarted service holds it). With ``run_as``
    (``update.selftest_user``) it runs as the node's user through :func:`as_service_user`: the updater's unit may
    write only /opt/edge-anpr, and selftest writes a probe into the node's state directory, as the node does."""

    config: str
    timeout_s: float = 300.0
    run_as: str | None = None
    state_dir: str = "/var/lib/edge-anpr"

    def command(self, release: Path) -> list[str]:
        cmd = [str(release / "venv" / "bin" / "edge-anpr"), "selftest", "--config", self.config, "--skip", "camera"]
        return cmd if self.run_as is None else [*as_service_user(self.run_as, self.state_dir, self.timeout_s), *cmd]

    def check(self, release: Path) -> str | None:
        cmd = self.command(release)
        try:  # systemd's RuntimeMaxSec ends a transient selftest first
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s + 30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"selftest did not run: {exc}"
        if done.returncode == 0:
            return None
        return f"selftest exit {done.returncode}: {(done.stdout + done.stderr).strip()[-400:]}"


@dataclass(frozen=True, slots=True)
class HealthFileProbe:
    """The node's ``health.json``: written since the switch, by ``version``, without a storage error."""

    path: Path
    since: float = field(default_factory=time.time)

    def problem(self, version: str) -> str | None:
        try:
            if self.path.stat().st_mtime < self.since:
                return "no health report since the restart"
            body = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"no health report ({exc})"
        running = body.get("versions", {}).get("software")
        if running != version:
            return f"health reports software {running}, not {version}"
        if "storage_error" in body:
            return f"storage error: {body['storage_error']}"
        return None


# -- install ----------------------------------------------------------------------------------------------------------


def unpack_bundle(bundle: Path, dest: Path) -> dict[str, Any]:
    """Extract the bundle into ``dest`` (regular files only, no path outside it) and check every file against
    ``release.json``; returns release.json."""
    with tarfile.open(bundle, "r:") as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name.startswith("/") or ".." in Path(member.name).parts:
                raise UpdateError("bad_bundle", f"member {member.name!r} is not a plain relative file")
        tar.extractall(dest, filter="data")
    try:
        doc: dict[str, Any] = json.loads((dest / RELEASE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UpdateError("bad_bundle", f"no readable {RELEASE_JSON}: {exc}") from exc
    if doc.get("format") != RELEASE_FORMAT:
        raise UpdateError("bad_bundle", f"{RELEASE_JSON} is not {RELEASE_FORMAT}")
    import hashlib

    for name, meta in doc.get("files", {}).items():
        path = dest / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != meta.get("sha256"):
            raise UpdateError("bad_bundle", f"{name} is missing or does not match {RELEASE_JSON}")
    return doc


def install_venv(release: Path, doc: dict[str, Any], *, installer: str, python: str) -> None:
    """``release/venv`` with the release's package: offline from the bundle's wheels (pip), or unpacked (tests)."""
    venv = release / "venv"
    wheel = release / str(doc["wheel"])
    if installer == "unpack":
        _run([python, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)])
        site = next((venv / "lib").glob("python3*/site-packages"))
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise UpdateError("bad_bundle", f"wheel member {name!r} leaves site-packages")
            zf.extractall(site)  # noqa: S202 - every member checked above
        return
    _run([python, "-m", "venv", "--system-site-packages", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check",
          "--find-links", str(release / "wheels"), str(wheel)])


def _run(cmd: list[str]) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError("install_failed", f"{cmd[0]}: {exc}") from exc
    if done.returncode != 0:
        raise UpdateError("install_failed", f"{' '.join(cmd[:4])}...: {(done.stderr or done.stdout).strip()[-400:]}")


# -- the updater --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    site: str
    camera: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Timing:
    startup_s: float = 180.0
    healthy_s: float = 300.0
    poll_s: float = 5.0
    min_free_mb: int = 200


@dataclass(slots=True)
class Outcome:
    """What one run did: ``action`` is none, updated, rolled_back, refused or recovered; bytes fetched."""

    action: str
    version: str | None = None
    detail: str = ""
    bytes: int = 0


class NodeUpdater:
    """One node's updater (run by ``edge-anpr update run`` as root, from the stable release)."""

    def __init__(
        self, root: Path, client: ReleaseClient, identity: Identity, *, restarter: Restarter, selftest: SelfTest,
        probe: Callable[[], HealthProbe], timing: Timing = Timing(), installer: str = "pip",
        python: str = sys.executable, on_step: Callable[[str], None] | None = None,
        now: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
        fetched: Callable[[], int] = lambda: 0,
    ) -> None:
        self.root = root
        self._client = client
        self._id = identity
        self._restarter = restarter
        self._selftest = selftest
        self._probe = probe
        self._timing = timing
        self._installer = installer
        self._python = python
        self._on_step = on_step or (lambda step: None)
        self._now = now or (lambda: datetime.now().astimezone())
        self._sleep = sleep
        self._fetched = fetched
        (root / "releases").mkdir(parents=True, exist_ok=True)

    # -- state helpers --------------------------------------------------------------------------------------------

    @property
    def state(self) -> UpdateState:
        return read_state(self.root)

    def _set(self, state: UpdateState, step: str | None = None) -> UpdateState:
        write_state(self.root, state)
        self._on_step(step or state.step)
        return state

    def _failure(self, version: str, reason: str, detail: str, sha256: str | None = None) -> Failure:
        return Failure(version, reason, detail[:400], iso_ms(self._now()), sha256)

    # -- one run ----------------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        recovered = self.recover()
        if recovered is not None and recovered.action != "recovered":
            return recovered  # an interrupted confirmation finished, or a rollback: this run's work is done
        start = self._fetched()
        try:
            wanted = self._client.wanted(self._id.site, self._id.camera, self._id.groups)
        except UpdateError as exc:
            return self._refused(exc, start)
        current = linked_version(self.root, "current")
        if wanted is None or wanted.version == current:
            return Outcome("none", current, "up to date" if wanted else "no release rolled out to this node",
                           self._fetched() - start)
        failed = self.state.failed
        if failed is not None and failed.version == wanted.version and failed.sha256 == wanted.sha256:
            return Outcome("none", current, f"{wanted.version} failed here before ({failed.reason}); waiting for "
                           "another release", self._fetched() - start)
        try:
            self._stage(wanted, current)
        except UpdateError as exc:
            self._clean_partial()
            return self._refused(exc, start)
        outcome = self._switch_and_confirm(wanted.version, current)
        outcome.bytes = self._fetched() - start
        return outcome

    def _refused(self, exc: UpdateError, start: int) -> Outcome:
        state = self.state
        self._set(replace(state, step="idle", version=None,
                          refused=self._failure(exc.version or "?", exc.reason, exc.detail)), "refused")
        log.warning("update: REFUSED %s: %s (%s); the node keeps what it runs", exc.version, exc.reason, exc.detail)
        return Outcome("refused", exc.version, f"{exc.reason}: {exc.detail}", self._fetched() - start)

    def _stage(self, wanted: Wanted, current: str | None) -> None:
        """Download, verify, unpack and install ``wanted`` into releases/<version> (or reuse a complete one)."""
        version = check_version(wanted.version)
        release = self.root / "releases" / version
        if is_complete(self.root, version) and (release / COMPLETE).read_text().strip() == wanted.sha256:
            self._set(UpdateState("installed", version, current, wanted.sha256, iso_ms(self._now())))
            return
        self._check_disk(wanted.length)
        self._set(UpdateState("downloading", version, current, wanted.sha256, iso_ms(self._now())))
        downloads = self.root / "tuf" / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        bundle = self._client.download(wanted, downloads / f"edge-anpr-{version}.tar")
        self._set(UpdateState("installing", version, current, wanted.sha256, iso_ms(self._now())))
        if release.exists():
            shutil.rmtree(release)
        release.mkdir(parents=True)
        doc = unpack_bundle(bundle, release)
        if doc.get("version") != version:
            raise UpdateError("bad_bundle", f"the bundle says version {doc.get('version')}, the repository {version}",
                              version)
        install_venv(release, doc, installer=self._installer, python=self._python)
        bundle.unlink()
        write_atomic(release / COMPLETE, f"{wanted.sha256}\n".encode(), mode=0o644)
        fsync_dir(release)
        self._set(UpdateState("installed", version, current, wanted.sha256, iso_ms(self._now())))

    def _check_disk(self, length: int) -> None:
        free = shutil.disk_usage(self.root).free
        need = 3 * length + self._timing.min_free_mb * 1024 * 1024
        if free < need:
            raise UpdateError("disk", f"{free // 2**20} MiB free on {self.root}, the update needs {need // 2**20} MiB "
                              "(three times the bundle and update.min_free_mb)")

    def _switch_and_confirm(self, version: str, previous: str | None) -> Outcome:
        state = self.state
        self._set(replace(state, step="switching"))
        switch_link(self.root, "current", version)
        self._set(replace(state, step="switched", attempts=1, since=iso_ms(self._now())))
        self._restarter.restart()
        self._on_step("restarted")
        return self.confirm()

    def confirm(self) -> Outcome:
        """Selftest, then ``healthy_s`` of health from the new release; confirmed, or rolled back."""
        state = self._set(replace(self.state, step="confirming"))
        version = str(state.version)
        problem = self._selftest.check(self.root / "current")
        if problem is not None:
            return self.rollback("selftest_failed", problem)
        probe = self._probe()
        t = self._timing
        started = time.monotonic()
        healthy_since: float | None = None
        while True:
            now = time.monotonic()
            problem = probe.problem(version)
            if problem is None:
                healthy_since = healthy_since if healthy_since is not None else now
                if now - healthy_since >= t.healthy_s:
                    break
            elif healthy_since is not None:
                return self.rollback("unhealthy", f"after {now - healthy_since:.0f} s healthy: {problem}")
            elif now - started > t.startup_s:
                return self.rollback("unhealthy", f"not healthy within {t.startup_s:.0f} s: {problem}")
            self._sleep(min(t.poll_s, max(0.01, t.healthy_s / 4)))
        return self._confirmed(version, state.previous)

    def _confirmed(self, version: str, previous: str | None) -> Outcome:
        switch_link(self.root, "stable", version)
        keep = {version, previous}
        for old in (self.root / "releases").iterdir():
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        self._set(UpdateState(failed=self.state.failed if self.state.failed and self.state.failed.version != version
                              else None), "confirmed")
        log.info("update: %s confirmed (previous %s kept until the next is confirmed)", version, previous)
        return Outcome("updated", version, f"{previous} -> {version}, confirmed")

    def rollback(self, reason: str, detail: str) -> Outcome:
        state = self.state
        version, previous = str(state.version), state.previous
        log.error("update: %s FAILED (%s: %s); going back to %s", version, reason, detail, previous)
        self._set(replace(state, step="rolling_back", failed=self._failure(version, reason, detail, state.sha256)))
        if previous is not None and is_complete(self.root, previous):
            switch_link(self.root, "current", previous)
            self._restarter.restart()
        shutil.rmtree(self.root / "releases" / version, ignore_errors=True)
        self._set(UpdateState(failed=self.state.failed), "rolled_back")
        return Outcome("rolled_back", previous, f"{version} {reason}: {detail}")

    # -- power cuts ---------------------------------------------------------------------------------------------------

    def _clean_partial(self) -> None:
        state = self.state
        if state.version and not is_complete(self.root, state.version) and state.version != linked_version(
                self.root, "current"):
            shutil.rmtree(self.root / "releases" / state.version, ignore_errors=True)
        shutil.rmtree(self.root / "tuf" / "downloads", ignore_errors=True)
        for tmp in self.root.glob(".*.new"):
            tmp.unlink(missing_ok=True)

    def recover(self) -> Outcome | None:
        """Finish or undo what ``update.json`` says was in flight; None when nothing was."""
        state = self.state
        if state.step == "idle":
            self._clean_partial()
            return None
        current = linked_version(self.root, "current")
        if state.step in ("downloading", "installing", "installed") or (
                state.step == "switching" and current != state.version):
            self._clean_partial()
            self._set(replace(state, step="idle", version=None))
            return Outcome("recovered", current, f"an interrupted {state.step} of {state.version} was undone")
        if state.step == "rolling_back":
            out = self.rollback(state.failed.reason if state.failed else "interrupted", "rollback resumed")
            out.action = "rolled_back"
            return out
        if current != state.version:  # switched/confirming, yet current is not it: a rollback cut short
            self._set(UpdateState(failed=state.failed))
            return Outcome("recovered", current, "current is not the release being confirmed; nothing to confirm")
        if state.attempts >= MAX_ATTEMPTS:
            return self.rollback("unhealthy", f"the node restarted {state.attempts} times before {state.version} "
                                 "was confirmed")
        self._set(replace(state, step="switched", attempts=state.attempts + 1))
        self._restarter.restart()
        return self.confirm()
