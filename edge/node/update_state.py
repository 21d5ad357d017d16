"""What the updater leaves on disk for everyone else to read: ``update.json`` and the ``current``/``stable`` links.

Kept apart from :mod:`edge.node.update` (which needs python-tuf) so that the node's health reads it without
importing the updater: :func:`health_fields` is the ``update`` member of every health message.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from edge.files import fsync_dir, write_atomic

log = logging.getLogger(__name__)

STATE_FORMAT = "anpr.update-state/1"
STATE_FILE = "update.json"
COMPLETE = ".complete"
Step = Literal["idle", "downloading", "installing", "installed", "switching", "switched", "confirming", "rolling_back"]


@dataclass(frozen=True, slots=True)
class Failure:
    version: str
    reason: str
    detail: str
    time: str
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateState:
    """What ``update.json`` holds: the step in flight (``idle`` when none) and the last failure."""

    step: Step = "idle"
    version: str | None = None  # the release being installed or confirmed
    previous: str | None = None  # the release to go back to
    sha256: str | None = None
    since: str | None = None
    attempts: int = 0
    failed: Failure | None = None
    refused: Failure | None = None  # the last update refused before anything changed (metadata, download, disk)

    def as_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> UpdateState:
        if doc.get("format") != STATE_FORMAT:
            raise ValueError(f"not {STATE_FORMAT}")
        fields = {k: v for k, v in doc.items() if k != "format"}
        for key in ("failed", "refused"):
            if isinstance(fields.get(key), dict):
                fields[key] = Failure(**fields[key])
        return cls(**fields)


def read_state(root: Path) -> UpdateState:
    try:
        return UpdateState.from_dict(json.loads((root / STATE_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return UpdateState()
    except (OSError, ValueError, TypeError) as exc:
        log.error("update: %s is unreadable (%s); recovering from the links alone", root / STATE_FILE, exc)
        return UpdateState(step="switched")  # recover() then checks current against stable


def write_state(root: Path, state: UpdateState) -> None:
    write_atomic(root / STATE_FILE, (json.dumps(state.as_dict(), indent=1, sort_keys=True) + "\n").encode(),
                 mode=0o644)
    fsync_dir(root)



def linked_version(root: Path, name: str) -> str | None:
    """The release ``root/name`` (``current``, ``stable``) points at, or None."""
    try:
        target = os.readlink(root / name)
    except OSError:
        return None
    return Path(target).name


def switch_link(root: Path, name: str, version: str) -> None:
    """Point ``root/name`` at ``releases/<version>`` atomically: a new link, then rename over the old one."""
    tmp = root / f".{name}.new"
    tmp.unlink(missing_ok=True)
    os.symlink(f"releases/{version}", tmp)
    os.replace(tmp, root / name)
    fsync_dir(root)


def is_complete(root: Path, version: str) -> bool:
    return (root / "releases" / version / COMPLETE).is_file()


def health_fields(root: Path) -> dict[str, Any]:
    """The ``update`` member of health: the running release, a pending step, the last failure or refusal."""
    state = read_state(root)
    body: dict[str, Any] = {}
    running = linked_version(root, "current")
    if running is not None:
        body["running"] = running
    stable = linked_version(root, "stable")
    if stable is not None:
        body["confirmed"] = stable
    if state.step != "idle":
        pending = {"step": state.step, "version": state.version, "since": state.since}
        body["pending"] = {k: v for k, v in pending.items() if v is not None}
    for key in ("failed", "refused"):
        value = getattr(state, key)
        if value is not None:
            body[key] = {k: v for k, v in asdict(value).items() if v is not None and k != "sha256"}
    return body
