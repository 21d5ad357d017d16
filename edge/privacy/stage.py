"""The privacy stage: turns a vehicle pass into the one message that may leave the node, or nothing.

Order for each pass: hotlist check -> (hotlist_only: non-hits stop here, consuming no sequence number, so
the gaps do not count the traffic) -> sequence number and id -> image decision -> redaction of the image,
failing closed -> JPEG + base64 -> payload built from the allow-list -> compact JSON -> ``OutgoingMessage``
carrying its sequence number and the note its audit entry is made from (the entry is committed with the
read, by ``edge.outbox.ledger``). The plate text is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

import cv2
import numpy as np

from edge.clock import Clock, iso_ms
from edge.config.model import NodeConfig, PrivacyConfig
from edge.domain import AuditNote, Box, Image, OutgoingMessage, Redaction, VehiclePass, View
from edge.privacy.policy import (
    ImageKind,
    PolicyViolationError,
    build_read_payload,
    image_kind_for,
    policy_version,
)
from edge.privacy.pseudonym import Pseudonymiser, RotatingPseudonymiser
from edge.privacy.redact import cabin_region, other_vehicles

log = logging.getLogger(__name__)


class ImageRedactor(Protocol):
    """Removes faces from an image; raises (``RedactionFailed`` or anything else) when it cannot."""

    def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), *, views: Sequence[View] = (),
                     plate: Box | None = None, others: Sequence[Box] = ()) -> tuple[Image, Redaction]: ...


class PlateLocator(Protocol):
    """Where the plates of an image are (full-resolution boxes), unread: the overview's other vehicles."""

    def locate(self, image: Image) -> Sequence[Box]: ...


class HotlistMatcher(Protocol):
    """Says whether a normalised plate is on the (unexpired) hotlist at ``now``."""

    def match(self, plate: str, now: datetime) -> bool: ...


@dataclass(slots=True)
class PrivacyStats:
    """Counters for the health message (ints: safe to read from another thread)."""

    passes: int = 0
    reads_prepared: int = 0
    reads_suppressed: int = 0  # hotlist_only: vehicles not on the hotlist, nothing left the node
    hotlist_hits: int = 0
    images_attached: int = 0
    images_dropped: int = 0
    redaction_failures: int = 0
    policy_violations: int = 0

    def snapshot(self) -> dict[str, int]:
        return dict(asdict(self))


class PrivacyStage:
    """Decides what of a ``VehiclePass`` may leave and builds the outgoing message.

    ``redactor`` None means no image can ever leave (fail closed). ``seq_start`` is the next sequence
    number (the caller restores it from the outbox and the sequence file so it keeps increasing across restarts).
    """

    def __init__(
        self,
        policy: PrivacyConfig,
        node: NodeConfig,
        topic: str,
        *,
        redactor: ImageRedactor | None,
        clock: Clock,
        hotlist: HotlistMatcher | None = None,
        seq_start: int = 0,
        pseudonymiser: Pseudonymiser | None = None,
        locator: PlateLocator | None = None,
    ) -> None:
        if seq_start < 0:
            raise ValueError(f"seq_start {seq_start} must be >= 0")
        if policy.plate_mode == "pseudonymised" and pseudonymiser is None:
            if policy.pseudonym_key_file is None:  # the config validator already refuses this
                raise ValueError("pseudonymised mode needs privacy.pseudonym_key_file")
            pseudonymiser = RotatingPseudonymiser.from_file(policy.pseudonym_key_file, policy.pseudonym_rotation)
        self._policy = policy
        self._node = node
        self._topic = topic
        self._redactor = redactor
        self._locator = locator  # other vehicles' plates in an overview that the tracker does not follow yet
        self._clock = clock
        self._hotlist = hotlist
        self._pseudonymiser = pseudonymiser
        self._seq = seq_start
        self._version = policy_version(policy)
        self._lock = threading.Lock()
        self.stats = PrivacyStats()

    @property
    def next_seq(self) -> int:
        return self._seq

    @property
    def policy_version(self) -> str:
        return self._version

    def replace_hotlist(self, hotlist: HotlistMatcher | None) -> None:
        """Swap in a newly loaded hotlist (or none); reads prepared afterwards are matched against it."""
        with self._lock:
            self._hotlist = hotlist

    def prepare(self, p: VehiclePass, *, clock_unsynced: bool = False) -> OutgoingMessage | None:
        """The message for ``p``, or None when the policy lets nothing leave."""
        with self._lock:
            return self._prepare(p, clock_unsynced)

    def _prepare(self, p: VehiclePass, clock_unsynced: bool) -> OutgoingMessage | None:
        self.stats.passes += 1
        hit = self._check_hotlist(p)
        if self._policy.plate_mode == "hotlist_only" and hit is not True:
            self.stats.reads_suppressed += 1
            return None
        seq = self._seq
        self._seq += 1
        read_id = self._read_id(seq, p)
        kind = image_kind_for(self._policy, hit)
        encoded = self._image(p, kind, read_id) if kind is not None else None
        try:
            payload = build_read_payload(
                p,
                policy=self._policy,
                node=self._node,
                seq=seq,
                read_id=read_id,
                image=encoded,
                hotlist_hit=hit,
                pseudonymiser=self._pseudonymiser,
                clock_unsynced=clock_unsynced,
            )
        except (PolicyViolationError, ValueError) as exc:
            self.stats.policy_violations += 1
            log.error("read %s refused by the policy check (%s); nothing leaves for it", read_id, exc)
            return None
        if payload is None:  # pragma: no cover - hotlist_only non-hits return above
            self.stats.reads_suppressed += 1
            return None
        self.stats.reads_prepared += 1
        if encoded is not None:
            self.stats.images_attached += 1
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        note = AuditNote(fields=tuple(sorted(payload)), image="image" in payload, policy_version=self._version)
        return OutgoingMessage(message_id=read_id, topic=self._topic, payload=body, captured_at=p.first_seen,
                               seq=seq, audit=note)

    def _check_hotlist(self, p: VehiclePass) -> bool | None:
        if self._hotlist is None:
            return False if self._policy.plate_mode == "hotlist_only" else None
        hit = self._hotlist.match(p.plate, self._clock.now())
        if hit:
            self.stats.hotlist_hits += 1
        return hit

    def _read_id(self, seq: int, p: VehiclePass) -> str:
        """``<site>.<camera>.<seq>.<8 hex>``: the hex is derived from the pass (not the plate), so it is stable."""
        site, camera = self._node.site, self._node.camera
        seed = f"{site}.{camera}.{seq}.{iso_ms(p.first_seen)}.{p.track_id}".encode()
        return f"{site}.{camera}.{seq}.{hashlib.sha256(seed).hexdigest()[:8]}"

    def _image(self, p: VehiclePass, kind: ImageKind, read_id: str) -> dict[str, Any] | None:
        source = p.best.crop if kind == "plate_patch" else p.overview
        if self._redactor is None or source.size == 0:  # empty: an overview camera had no frame near the read
            self._drop(read_id, "no redactor is configured" if self._redactor is None
                       else "the overview camera had no frame near the read", redaction=self._redactor is None)
            return None
        # the read's plate box is the plate camera's: in another camera's overview it is nowhere in particular
        plate = None if kind == "redacted_overview" and p.overview_camera else p.best.detection.box
        extra: tuple[Box, ...] = ()
        views: tuple[View, ...] = ()
        others: tuple[Box, ...] = ()
        if kind == "redacted_overview":
            views = p.views  # faces seen in other frames of the pass are covered in this one too
            try:  # other vehicles in the frame: their drivers too
                others = (*p.others, *(self._locator.locate(source) if self._locator is not None else ()))
            except Exception as exc:  # noqa: BLE001 - fail closed: without the other vehicles no image leaves
                self._drop(read_id, f"finding the other vehicles failed: {type(exc).__name__}: {exc}")
                return None
            if self._policy.redact_cabin:
                height, width = source.shape[:2]
                own = (plate,) if plate is not None else ()
                cabins = (cabin_region(b, width=width, height=height) for b in (*own, *other_vehicles(others, plate)))
                extra = tuple(c for c in cabins if all(c.intersection(o) == 0 for o in own))  # never the read's plate
        try:
            redacted, record = self._redactor.redact_image(source, extra, views=views, plate=plate, others=others)
            faces_left = int(record.second_pass_faces)
        except Exception as exc:  # noqa: BLE001 - fail closed on ANY redactor error: the image is dropped
            self._drop(read_id, f"redaction failed: {type(exc).__name__}: {exc}")
            return None
        if faces_left != 0:
            self._drop(read_id, f"second pass still found {faces_left} faces")
            return None
        try:
            return _encode(redacted, kind, record, self._policy.jpeg_quality)
        except (cv2.error, ValueError) as exc:
            self._drop(read_id, f"JPEG encoding failed: {exc}", redaction=False)
            return None

    def _drop(self, read_id: str, why: str, *, redaction: bool = True) -> None:
        if redaction:
            self.stats.redaction_failures += 1
        self.stats.images_dropped += 1
        log.warning("image of read %s dropped (%s); the read goes without it", read_id, why)


def _encode(image: Image, kind: ImageKind, record: Redaction, quality: int) -> dict[str, Any]:
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"image of dtype {image.dtype} and shape {image.shape} is not an 8-bit grey/BGR image")
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f"cv2.imencode refused an image of shape {image.shape}")
    return {
        "kind": kind,
        "content_type": "image/jpeg",
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "data": base64.b64encode(buf.tobytes()).decode("ascii"),
        "redaction": {
            "detector": record.detector,
            "model_sha256": record.model_sha256,
            "threshold": float(record.threshold),
            "regions": int(record.regions),
            "second_pass_faces": int(record.second_pass_faces),
        },
    }
