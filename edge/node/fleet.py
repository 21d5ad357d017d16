"""The node's side of the fleet control channel: verify what the centre pushed, apply it whole, say what happened.

:class:`FleetNode` receives every message on the node's control topics (its own, ``<prefix>/ctl/<site>/<camera>/#``,
and its groups', ``<prefix>/ctl/group/<name>/#``; QoS 1 on the node's persistent session, retained, so a node
that was offline gets the latest on reconnect). A manifest is checked with :func:`edge.fleet.manifest.verify_manifest`
against the centre's pinned public key(s) and the version this node applied; the payload's chunks are collected
until they make exactly what the manifest announced (size, sha256), and only then applied.

A hotlist is applied atomically: the payload as received (keyed hashes, compressed; a JSON header line before
it) is written to a temporary file beside ``<state_dir>/fleet/hotlist-<target>.json``, fsynced, renamed over it
and the directory fsynced, then the version is recorded (``fleet/versions.json``, the same way) and the in-memory
matcher swapped. A power cut at any moment leaves the old list or the new one. A refused update (its reason typed,
see :mod:`edge.fleet.manifest`) is logged, counted and listed in health (``fleet.refused``); the node keeps
running on what it had.

A release announcement (kind ``release``, to the node, a group or ``group/all``) names a version; once verified
like any push, the node writes ``<state_dir>/fleet/release.json`` (atomically) and does nothing else: the
``edge-anpr-update.path`` unit sees it and starts the updater (root, its own service), which installs only what the
TUF repository, verified from the pinned root, says this node should run. The frame loop never waits for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge.clock import Clock, iso_ms
from edge.config.model import FleetConfig, NodeConfig, PrivacyConfig
from edge.config.safe_yaml import MAX_BYTES as MAX_CONFIG_BYTES
from edge.errors import ConfigError
from edge.files import fsync_dir, write_atomic
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.fleet.manifest import Manifest, Reason, Refusal, verify_manifest, verify_payload
from edge.fleet.release import parse_note
from edge.fleet.topics import (
    EVERYONE,
    KINDS,
    ControlTopic,
    group_target,
    node_subscriptions,
    node_target,
    parse_topic,
)
from edge.node.config_push import ConfigPushes
from edge.privacy.hotlist import Hotlist, HotlistError, hotlist_from_doc

log = logging.getLogger(__name__)

STORE_FORMAT = "anpr.fleet-hotlist/1"
FLEET_DIR = "fleet"
VERSIONS = "versions.json"
REFUSED = "refused.json"  # per kind:target, the version and sha256 of the last push refused after its signature held
RELEASE_TRIGGER = "release.json"  # written on a verified release announcement; edge-anpr-update.path watches it
TRIGGER_FORMAT = "anpr.release-announced/1"
REFUSALS_KEPT = 10
EXPAND_FACTOR = 8  # a pushed payload may expand to this many times its announced size (JSON of hex hashes: ~2x)


def store_name(target: str) -> str:
    """``hotlist-<site>.<camera>.json`` or ``hotlist-group.<name>.json`` ('.' is in no id, so names never clash)."""
    return f"hotlist-{target.replace('/', '.')}.json"



def read_store(path: Path) -> tuple[dict[str, Any], bytes]:
    """A stored pushed list: its JSON header line, and the payload exactly as received (hashed, compressed)."""
    raw = path.read_bytes()
    head, sep, data = raw.partition(b"\n")
    header = json.loads(head)
    if not sep or not isinstance(header, dict) or header.get("format") != STORE_FORMAT:
        raise ValueError(f"not an {STORE_FORMAT} file")
    if hashlib.sha256(data).hexdigest() != header.get("sha256"):
        raise ValueError("its payload does not match its sha256")
    return header, data


class HotlistSet:
    """Several hotlists as one matcher (the local file's and each pushed target's): a hit on any is a hit."""

    def __init__(self, lists: Sequence[Hotlist]) -> None:
        self._lists = tuple(lists)

    def match(self, plate: str, now: datetime) -> bool:
        return any(h.match(plate, now) for h in self._lists)

    def __len__(self) -> int:
        return sum(len(h) for h in self._lists)


@dataclass(slots=True)
class _Pending:
    """Chunks of one version of one target's payload, and its manifest once it came."""

    version: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    count: int | None = None
    manifest: Manifest | None = None

    @property
    def bytes(self) -> int:
        return sum(len(c) for c in self.chunks.values())


class FleetNode:
    """Receives, verifies and applies control messages; thread-safe (MQTT thread in, health thread out)."""

    def __init__(
        self, fleet: FleetConfig, node: NodeConfig, privacy: PrivacyConfig, *, prefix: str, state_dir: Path,
        clock: Clock, on_hotlists: Callable[[list[Hotlist]], None] | None = None,
        on_change: Callable[[], None] | None = None, configs: ConfigPushes | None = None,
    ) -> None:
        self._cfg = fleet
        self._prefix = prefix
        self._clock = clock
        self._grace = timedelta(seconds=privacy.hotlist_grace_s)
        self._confusables = privacy.hotlist_confusables
        self._keys = signing.load_public_keys(fleet.public_key_file)
        self._keyring = fp.load_keyring(fleet.hotlist_keys_file) if fleet.hotlist_keys_file else {}
        self._own = node_target(node.site, node.camera)
        self._targets = (self._own, *(group_target(g) for g in fleet.groups))
        self.subscriptions = node_subscriptions(prefix, node.site, node.camera, fleet.groups)
        self._dir = state_dir / FLEET_DIR
        try:
            self._dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {self._dir}: {exc.strerror or exc}") from exc
        for stale in self._dir.glob(".*.tmp"):  # a write cut by a crash: the file it was to replace is intact
            stale.unlink(missing_ok=True)
        self._on_hotlists = on_hotlists
        self.on_change = on_change  # told after every applied update and refusal (the service: publish health now)
        self._lock = threading.Lock()
        self._versions: dict[str, int] = self._load_versions()
        self._refused_pushes: dict[str, tuple[int, str]] = self._load_refused()
        self._pending: dict[str, _Pending] = {}
        self._hotlists: dict[str, Hotlist] = {}
        self._refused: deque[dict[str, Any]] = deque(maxlen=REFUSALS_KEPT)
        self.refusals = 0
        self.last_apply_s: float | None = None  # how long the last apply took (decode, verify, write, swap)
        self._configs = configs  # None: config pushes are refused (a node started without a config file)
        rolled = configs.rolled_back() if configs is not None else None
        if rolled:  # listed with the refusals until ten newer ones push it out (fleet status keeps it)
            self._refused.append({"reason": "rolled_back", "kind": "config", "target": str(rolled.get("target")),
                                  "version": rolled.get("version"), "time": rolled["time"],
                                  "detail": f"{rolled['reason']}: {rolled['detail']}"[:300]})
        self.announced: str | None = None  # the release the last verified announcement named
        self._load_hotlists()

    # -- state on disk ---------------------------------------------------------------------------

    def _load_versions(self) -> dict[str, int]:
        path = self._dir / VERSIONS
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("fleet: cannot read %s (%s); versions are taken from the stored lists", path, exc)
            return {}
        return {str(k): int(v) for k, v in doc.items() if isinstance(v, int)} if isinstance(doc, dict) else {}

    def _load_refused(self) -> dict[str, tuple[int, str]]:
        try:
            doc = json.loads((self._dir / REFUSED).read_text(encoding="utf-8"))
            return {str(k): (int(v[0]), str(v[1])) for k, v in doc.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            log.error("fleet: cannot read %s (%s); a refused push still retained is refused again", REFUSED, exc)
            return {}

    def _remember_refused(self, key: str, manifest: Manifest) -> None:
        """A retained push stays on the broker: remember it, so it is not refused (and reported) again at every
        restart. Only a push whose signature held: its content, not a wrong clock or key, is what was refused."""
        self._refused_pushes[key] = (manifest.version, manifest.sha256)
        write_atomic(self._dir / REFUSED, (json.dumps(self._refused_pushes, sort_keys=True) + "\n").encode())
        fsync_dir(self._dir)

    def _save_versions(self) -> None:
        write_atomic(self._dir / VERSIONS, (json.dumps(self._versions, sort_keys=True) + "\n").encode())
        fsync_dir(self._dir)

    def _load_hotlists(self) -> None:
        now = self._clock.now()
        for target in self._targets:
            path = self._dir / store_name(target)
            if not path.exists():
                continue
            try:
                header, data = read_store(path)
                version = int(header["version"])
                doc = fp.decode_hotlist(data, EXPAND_FACTOR * self._cfg.max_payload_bytes)
                hotlist = hotlist_from_doc(doc, origin=path, now=now, grace=self._grace,
                                           confusables=self._confusables, hash_key=self._keyring.get(target))
            except HotlistError as exc:
                log.warning("fleet: the pushed hotlist for %s is not used: %s", target, exc)
                path.unlink(missing_ok=True)
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:  # PayloadError is a ValueError
                log.error("fleet: cannot load %s: %s; running without it", path, exc)
                continue
            key = f"hotlist:{target}"
            self._versions[key] = max(self._versions.get(key, 0), version)
            hotlist.stored_at = path
            self._hotlists[target] = hotlist
            log.info("fleet: hotlist for %s version %d: %d entries", target, version, len(hotlist))
        self._publish_hotlists()

    # -- messages ---------------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        """One message from a control topic (called on the MQTT thread; the broker's PUBACK follows its return)."""
        ct = parse_topic(self._prefix, topic)
        if ct is None or (ct.target not in self._targets and (ct.target, ct.kind) != (EVERYONE, "release")):
            log.warning("fleet: ignored a message on %s (not one of this node's control topics)", topic)
            return
        if not payload:
            return  # a retained message being cleared
        with self._lock:
            refusals = self.refusals
            if ct.chunk is None:
                self._manifest(ct, payload)
            else:
                self._chunk(ct, payload)
            changed = self._complete(f"{ct.kind}:{ct.target}") or self.refusals != refusals
        if changed and self.on_change is not None:
            self.on_change()

    def _manifest(self, ct: ControlTopic, raw: bytes) -> None:
        key = f"{ct.kind}:{ct.target}"
        applied = self._versions.get(key, 0)
        result = verify_manifest(raw, keys=self._keys, target=ct.target, kind=ct.kind, applied_version=applied,
                                 now=self._clock.now(), max_size=self._cfg.max_payload_bytes)
        if isinstance(result, Refusal):
            self._refuse(result)
            return
        if result.version == applied:
            log.debug("fleet: %s version %d is already applied", key, applied)
            return
        if self._refused_pushes.get(key) == (result.version, result.sha256):
            log.info("fleet: %s version %d was refused before (see the log and fleet status); push a new version",
                     key, result.version)
            self._pending.pop(key, None)
            return
        pending = self._pending.get(key)
        if pending is None or pending.version != result.version:
            pending = self._pending[key] = _Pending(result.version)
        pending.manifest = result

    def _chunk(self, ct: ControlTopic, message: bytes) -> None:
        key = f"{ct.kind}:{ct.target}"
        head = fp.chunk_header(message)
        if head is None:
            return
        version, index, count, data = head
        if version <= self._versions.get(key, 0) or index != ct.chunk:
            return  # an old version's chunk (still retained), or one on the wrong topic
        pending = self._pending.get(key)
        if pending is None or version > pending.version:
            pending = self._pending[key] = _Pending(version)
        elif version < pending.version:
            return
        if pending.bytes + len(data) > self._cfg.max_payload_bytes:
            self._pending.pop(key)
            self._refuse(Refusal("oversized", f"chunks exceed {self._cfg.max_payload_bytes} bytes", ct.target,
                                 ct.kind, version))
            return
        pending.chunks[index] = data
        pending.count = count

    def _complete(self, key: str) -> bool:
        pending = self._pending.get(key)
        if pending is None or pending.manifest is None or pending.count is None:
            return False
        manifest = pending.manifest
        if pending.count != manifest.chunks:
            self._pending.pop(key)
            self._refuse(self._refusal(manifest, "bad_payload",
                                       f"{pending.count} chunks sent, the manifest announced {manifest.chunks}"))
            return False
        if len(pending.chunks) < manifest.chunks:
            return False  # more to come
        self._pending.pop(key)
        refusals = self.refusals
        applied = self._verify_and_apply(manifest, b"".join(pending.chunks[i] for i in range(manifest.chunks)))
        if not applied and self.refusals != refusals:
            self._remember_refused(key, manifest)
        return applied

    def _verify_and_apply(self, manifest: Manifest, data: bytes) -> bool:
        refusal = verify_payload(manifest, data)
        if refusal is not None:
            self._refuse(refusal)
            return False
        apply = {"hotlist": self._apply_hotlist, "release": self._apply_release}.get(manifest.kind)
        if apply is not None:
            return apply(manifest, data)
        return self._apply_config(manifest, data)

    # -- applying -----------------------------------------------------------------------------------

    def _apply_hotlist(self, manifest: Manifest, data: bytes) -> bool:
        started = time.monotonic()
        target = manifest.target
        key = self._keyring.get(target)
        if key is None:
            self._refuse(self._refusal(manifest, "bad_payload", f"this node has no hotlist key for {target} "
                                       "(fleet.hotlist_keys_file)"))
            return False
        try:
            doc = fp.decode_hotlist(data, EXPAND_FACTOR * self._cfg.max_payload_bytes)
            hotlist = hotlist_from_doc(doc, origin=f"push {target} v{manifest.version}", now=self._clock.now(),
                                       grace=self._grace, confusables=self._confusables, hash_key=key)
        except (fp.PayloadError, HotlistError) as exc:
            self._refuse(self._refusal(manifest, "bad_payload", str(exc)))
            return False
        path = self._dir / store_name(target)
        header = {"format": STORE_FORMAT, "target": target, "version": manifest.version, "sha256": manifest.sha256,
                  "applied_at": iso_ms(self._clock.now())}
        write_atomic(path, json.dumps(header, separators=(",", ":")).encode() + b"\n" + data)
        fsync_dir(self._dir)
        self._versions[f"hotlist:{target}"] = manifest.version
        self._save_versions()
        hotlist.stored_at = path
        self._hotlists[target] = hotlist
        self._publish_hotlists()
        self.last_apply_s = time.monotonic() - started
        log.info("fleet: applied hotlist version %d for %s: %d entries, valid until %s (%.2f s)", manifest.version,
                 target, len(hotlist), iso_ms(hotlist.valid_until), self.last_apply_s)
        return True

    def _apply_release(self, manifest: Manifest, data: bytes) -> bool:
        """Ask for an update: the trigger file the update service's path unit watches (never the updater here)."""
        try:
            version = parse_note(data)
        except fp.PayloadError as exc:
            self._refuse(self._refusal(manifest, "bad_payload", str(exc)))
            return False
        trigger = {"format": TRIGGER_FORMAT, "version": version, "target": manifest.target,
                   "announcement": manifest.version, "time": iso_ms(self._clock.now())}
        write_atomic(self._dir / RELEASE_TRIGGER, (json.dumps(trigger, sort_keys=True) + "\n").encode(), mode=0o644)
        fsync_dir(self._dir)
        self._versions[f"release:{manifest.target}"] = manifest.version
        self._save_versions()
        self.announced = version
        log.info("fleet: release %s announced to %s (announcement %d): the updater checks the repository",
                 version, manifest.target, manifest.version)
        return True

    def _apply_config(self, manifest: Manifest, data: bytes) -> bool:
        """Check and write a pushed config (:mod:`edge.node.config_push`), record its version, then restart with it.
        The version is recorded before the restart, so the retained push is not taken again (nor after a rollback)."""
        if self._configs is None:
            self._refuse(self._refusal(manifest, "bad_payload", "this node takes no config pushes (started without "
                                       "a config file)"))
            return False
        try:
            yaml = fp.expand(data, MAX_CONFIG_BYTES)
        except fp.PayloadError as exc:
            self._refuse(self._refusal(manifest, "bad_payload", str(exc)))
            return False
        refusal = self._configs.apply(manifest, yaml)
        if refusal is not None:
            self._refuse(refusal)
            return False
        self._versions[f"config:{manifest.target}"] = manifest.version
        self._save_versions()
        self._configs.restart()
        return True

    def _publish_hotlists(self) -> None:
        if self._on_hotlists is not None:
            self._on_hotlists(list(self._hotlists.values()))

    # -- refusals and health ------------------------------------------------------------------------

    @staticmethod
    def _refusal(manifest: Manifest, reason: Reason, detail: str) -> Refusal:
        return Refusal(reason, detail, manifest.target, manifest.kind, manifest.version)

    def _refuse(self, r: Refusal) -> None:
        self.refusals += 1
        entry: dict[str, Any] = {"reason": r.reason, "detail": r.detail[:300], "time": iso_ms(self._clock.now())}
        if r.target is not None:
            entry["target"] = r.target
        if r.kind in KINDS:
            entry["kind"] = r.kind
        if r.version is not None and 0 <= r.version < 2**53:
            entry["version"] = r.version
        self._refused.append(entry)
        log.warning("fleet: REFUSED %s version %s for %s: %s (%s); keeping what this node has", r.kind, r.version,
                    r.target, r.reason, r.detail)

    def hotlists(self) -> list[Hotlist]:
        with self._lock:
            return list(self._hotlists.values())

    def health(self) -> dict[str, Any]:
        """The ``fleet`` member of health: groups, applied versions and counts, the last refusals."""
        with self._lock:
            now = self._clock.now()
            hotlists = [
                {"target": t, "version": self._versions.get(f"hotlist:{t}", 0), "entries": len(h),
                 "valid_until": iso_ms(h.valid_until)}
                for t, h in sorted(self._hotlists.items()) if not h.expired(now)
            ]
            body: dict[str, Any] = {"groups": [t.split("/", 1)[1] for t in self._targets[1:]], "hotlists": hotlists,
                                    "versions": dict(sorted(self._versions.items())), "refusals": self.refusals}
            if self._configs is not None:
                body["config"] = self._configs.health()
            if self._refused:
                body["refused"] = list(self._refused)
            return body
