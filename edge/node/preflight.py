"""What start-up would refuse, found without starting: the checks ``check-config``, ``selftest`` and the node's own
start share, so a config that passes ``check-config`` does not then stop the service.

Every check reads and changes nothing: the formats named exist, the model files resolve and are listed in their
manifests, the state directory is a writable directory (or can be made) and its outbox is not damaged (a warning:
the node sets a damaged one aside), the hotlist loads (an expired one is a warning: the node runs without it), the
key, certificate and password files are readable, a replay source exists.
Loading the models and opening the camera are the self-test's (they take time and need the hardware).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge.config import Config
from edge.errors import ConfigError, EdgeError, ModelError, SourceError, StateError


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing start-up would refuse (``error``, with the exit code ``run`` would give) or warn about."""

    message: str
    error: EdgeError | None = None

    @property
    def is_error(self) -> bool:
        return self.error is not None


CHECKS = ("formats", "state", "outbox", "models", "hotlist", "secrets", "source")


def preflight(config: Config, now: datetime, checks: tuple[str, ...] = CHECKS) -> list[Finding]:
    """Every finding of the named checks (all by default), errors and warnings, in the order start-up meets them:
    a check goes on past a problem, so one run names them all (each once)."""
    steps = {"formats": _formats, "state": _state_dir, "outbox": _outbox, "models": _models, "hotlist": _hotlist,
             "secrets": _secrets, "source": _source}
    findings: list[Finding] = []
    for name in checks:
        try:
            findings.extend(steps[name](config, now))
        except EdgeError as exc:
            findings.append(Finding(str(exc), exc))
    unique: dict[str, Finding] = {}
    for finding in findings:
        unique.setdefault(finding.message, finding)  # a manifest two models share is named once
    return list(unique.values())


def _each(*checks: Callable[[], object]) -> list[Finding]:
    """Run every check; the refusal of each is a finding, and the next check still runs."""
    findings = []
    for check in checks:
        try:
            check()
        except EdgeError as exc:
            findings.append(Finding(str(exc), exc))
    return findings


def check_config_file(path: str | Path, now: datetime, *, schema_only: bool = False) -> tuple[Config, list[str]]:
    """What ``check-config`` does: the config in ``path`` and its warnings, or a :class:`ConfigError` naming every
    problem (the file's own, else what start-up would refuse on this machine). A pushed config is checked by it."""
    from pydantic import ValidationError

    from edge.config import load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        if schema_only or not isinstance(exc.__cause__, ValidationError):
            raise
        raise ConfigError(f"{exc}\n(the models, files and directories it names are checked once the file is valid)"
                          ) from exc
    findings = [] if schema_only else preflight(config, now)
    errors = [f.message for f in findings if f.is_error]
    if errors:
        raise ConfigError(f"{path}: valid, but the node would not start with it here:\n"
                          + "\n".join(f"  - {e}" for e in errors))
    return config, [f.message for f in findings if not f.is_error]


def first_error(findings: list[Finding]) -> EdgeError | None:
    return next((f.error for f in findings if f.error is not None), None)


def _formats(config: Config, now: datetime) -> list[Finding]:
    from edge.read.formats import FormatSet

    FormatSet.load(config.read.formats, config.read.formats_file, config.read.country)
    return []


def _state_dir(config: Config, now: datetime) -> list[Finding]:
    state = Path(config.node.state_dir)
    if state.exists() and not state.is_dir():
        raise StateError(f"node.state_dir {str(state)!r} is a file, not a directory")
    if state.is_dir() and not os.access(state, os.W_OK | os.X_OK):
        raise StateError(f"node.state_dir {str(state)!r} is not writable by this user")
    parent = next((p for p in state.parents if p.exists()), None)
    if not state.exists() and parent is not None and not parent.is_dir():
        raise StateError(f"node.state_dir {str(state)!r} cannot be made: {parent} is a file")
    if state.is_dir():
        refuse_state_links(state, config)
    return []


def refuse_state_links(state: Path, config: Config) -> None:
    """Raise :class:`StateError` for a state file that is a symbolic link (the node would write where it points)."""
    from edge.files import refuse_link
    from edge.outbox.store import FILENAME
    from edge.privacy.hotlist import KEY_NAME, STORE_NAME

    audit = config.privacy.audit_file
    for name in (FILENAME, f"{FILENAME}-wal", f"{FILENAME}-shm", "seq", audit, f"{audit}.head", "health.json",
                 STORE_NAME, KEY_NAME):
        refuse_link(state / name)


def _outbox(config: Config, now: datetime) -> list[Finding]:
    """A damaged outbox is a warning: start-up moves it aside and goes on with what SQLite can still read (the
    outbox checks it again as it opens, so start-up itself leaves this check out)."""
    from edge.outbox.salvage import damaged_reason
    from edge.outbox.store import FILENAME

    state = Path(config.node.state_dir)
    if not state.is_dir():
        return []
    damage = damaged_reason(state / FILENAME)
    if damage is None:
        return []
    return [Finding(f"outbox {state / FILENAME} is damaged ({damage}): the node will move it aside, start a new one "
                    "with the reads SQLite can still read from it, and report outbox_set_aside in health")]


def _model(path: str, manifest: str, what: str) -> list[Finding]:
    """A missing model file and an unreadable manifest are named together; the listing is checked once both are."""
    from edge.runtime import load_manifest

    missing = _each(lambda: _exists(path, what))
    listing = (lambda: load_manifest(manifest)) if missing else (lambda: load_manifest(manifest).by_file(path))
    return missing + _each(listing)


def _exists(path: str, what: str) -> None:
    if not Path(path).is_file():
        raise ModelError(f"{what} {path!r} does not exist (from {Path.cwd()}); install the models or fix the path")


def _models(config: Config, now: datetime) -> list[Finding]:
    findings = _model(config.read.model, config.read.manifest, "read.model")
    if "wpod" in (config.detect.backend, config.detect.second_look):
        findings += _model(config.detect.model, config.detect.manifest, "detect.model")
    if config.privacy.images_may_leave:  # start-up fails closed instead: the node runs, no image leaves
        faces = (_model(config.privacy.face_model, config.read.manifest, "privacy.face_model")
                 + _model(config.privacy.face_check_model, config.read.manifest, "privacy.face_check_model"))
        findings += [Finding(f"{f.message}: the node will run, but no image will leave it") for f in faces]
    return findings


def _hotlist(config: Config, now: datetime) -> list[Finding]:
    from edge.privacy.hotlist import open_hotlist

    _, problem = open_hotlist(config.privacy, config.node.state_dir, now, dry_run=True)
    return [Finding(f"{problem}; the node will run without a hotlist")] if problem else []


def _readable(path: str | None, what: str) -> None:
    if path is not None and not (Path(path).is_file() and os.access(path, os.R_OK)):
        raise ConfigError(f"{what} {path!r} does not exist or is not readable")


def _secrets(config: Config, now: datetime) -> list[Finding]:
    from edge.privacy.pseudonym import read_secret
    from edge.publish.mqtt import check_key_file

    privacy, mqtt = config.privacy, config.mqtt
    checks: list[Callable[[], object]] = []
    if privacy.plate_mode == "pseudonymised" and privacy.pseudonym_key_file:
        key_file = privacy.pseudonym_key_file
        checks.append(lambda: read_secret(key_file, what="privacy.pseudonym_key_file"))
    if mqtt is not None:
        if (tls := mqtt.tls) is not None:
            checks += [lambda: _readable(tls.ca_file, "mqtt.tls.ca_file"),
                       lambda: _readable(tls.cert_file, "mqtt.tls.cert_file"),
                       lambda: check_key_file(tls.key_file)]
        checks.append(lambda: _readable(mqtt.password_file, "mqtt.password_file"))
    return _each(*checks) + _fleet(config)


def _fleet(config: Config) -> list[Finding]:
    """The centre's pinned key(s) must load; a keyring must load, and lacking a target's key is a warning."""
    from edge.fleet.payload import load_keyring
    from edge.fleet.signing import load_public_keys

    fleet = config.fleet
    if fleet is None:
        return []
    findings = _each(lambda: load_public_keys(fleet.public_key_file))
    if fleet.hotlist_keys_file is None:
        return [*findings, Finding("fleet.hotlist_keys_file is not set: the node will refuse pushed hotlists")]
    try:
        ring = load_keyring(fleet.hotlist_keys_file)
    except EdgeError as exc:
        return [*findings, Finding(str(exc), exc)]
    targets = [f"{config.node.site}/{config.node.camera}", *(f"group/{g}" for g in fleet.groups)]
    missing = [t for t in targets if t not in ring]
    if missing:
        findings.append(Finding(f"fleet.hotlist_keys_file {fleet.hotlist_keys_file!r} has no key for "
                                f"{', '.join(missing)}: the node will refuse hotlists pushed there"))
    return findings


def _source(config: Config, now: datetime) -> list[Finding]:
    capture = config.capture
    if capture.source == "video" and capture.path and not Path(capture.path).is_file():
        raise SourceError(f"capture.path: video file {capture.path!r} does not exist")
    if capture.source == "images" and capture.path and not Path(capture.path).is_dir():
        raise SourceError(f"capture.path: image folder {capture.path!r} does not exist")
    return []
