"""The small frozen dataclasses that pass between pipeline stages.

Each stage takes one of these and returns another; none of them carries a dict of
"anything". Images are numpy arrays held in memory only: raw frames are never written
to disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels, top-left origin."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return max(0, self.w) * max(0, self.h)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(round(self.x * sx), round(self.y * sy), round(self.w * sx), round(self.h * sy))

    def expanded(self, margin: float) -> Box:
        """Grow by ``margin`` times the box size on every side."""
        dx, dy = round(self.w * margin), round(self.h * margin)
        return Box(self.x - dx, self.y - dy, self.w + 2 * dx, self.h + 2 * dy)

    def clipped(self, width: int, height: int) -> Box:
        x0, y0 = max(0, self.x), max(0, self.y)
        x1, y1 = min(width, self.x + self.w), min(height, self.y + self.h)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def intersection(self, other: Box) -> int:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.w, other.x + other.w)
        y1 = min(self.y + self.h, other.y + other.h)
        return max(0, x1 - x0) * max(0, y1 - y0)

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One captured frame: full-resolution image plus the low-resolution one detection uses.

    ``timestamp`` is UTC. ``index`` counts frames from the source's start (a replay's index
    is the frame's position in the file, so replays are deterministic).
    """

    index: int
    timestamp: datetime
    image: Image
    lores: Image

    @property
    def scale(self) -> tuple[float, float]:
        """Factors that map low-resolution coordinates to full-resolution ones."""
        return (self.image.shape[1] / self.lores.shape[1], self.image.shape[0] / self.lores.shape[0])


@dataclass(frozen=True, slots=True)
class PlateDetection:
    """A plate found in a frame, in full-resolution pixel coordinates."""

    box: Box
    confidence: float
    corners: tuple[tuple[float, float], ...] | None = None  # top-left, top-right, bottom-right, bottom-left

    def scaled(self, sx: float, sy: float) -> PlateDetection:
        """The same detection in an image ``sx`` times wider and ``sy`` times taller."""
        corners = None if self.corners is None else tuple((x * sx, y * sy) for x, y in self.corners)
        return PlateDetection(self.box.scaled(sx, sy), self.confidence, corners)


CharOptions = tuple[tuple[str, float], ...]  # characters plausible at one position, with their probability


@dataclass(frozen=True, slots=True)
class PlateText:
    """What the OCR made of one plate crop, before format validation.

    ``unconstrained``: the reader's own best path (greedy) where ``text`` was fitted to a format and differs
    from it (None: ``text`` is the reader's own best path). ``char_options``: for each character of ``text``,
    the characters the model found plausible there (the likeliest first; those scored below
    ``read.fit_min_ratio`` of a sure best are left out), with their probability (a twin O/0, I/1 counted
    whole); empty when the reader does not say, and then any fit of the formats goes.
    """

    text: str
    char_confidences: tuple[float, ...]
    unconstrained: str | None = None
    char_options: tuple[CharOptions, ...] = ()

    @property
    def confidence(self) -> float:
        return min(self.char_confidences) if self.char_confidences else 0.0


@dataclass(frozen=True, slots=True)
class FormatMatch:
    """A read checked against the configured registration formats."""

    text: str  # normalised (uppercase, no spaces), corrected by position if a format fitted
    format_name: str | None  # None: fits no allowed format (kept, flagged)
    corrected: bool  # True when a confusable character was changed to fit the format
    display: str  # with the conventional space, e.g. "AB12 CDE"


@dataclass(frozen=True, slots=True, eq=False)
class PlateRead:
    """One sighting of a plate in one frame: detection, OCR and format check."""

    frame_index: int
    timestamp: datetime
    detection: PlateDetection
    raw: PlateText
    match: FormatMatch
    crop: Image  # full-resolution plate patch, in memory only
    whole: bool = True  # the crop looks like a whole plate with about as many characters as the read (read.crop)

    @property
    def text(self) -> str:
        return self.match.text

    @property
    def confidence(self) -> float:
        return self.raw.confidence

    @property
    def valid(self) -> bool:
        return self.match.format_name is not None

    @property
    def unconstrained(self) -> str:
        """The reader's own best path for this crop, before any format bent it (normalised)."""
        raw = self.raw.unconstrained if self.raw.unconstrained is not None else self.raw.text
        return raw.upper().replace(" ", "").replace("-", "")


@dataclass(frozen=True, slots=True, eq=False)
class View:
    """Another frame of a pass than the overview's, held in memory so faces found in it are covered there too."""

    plate: Box  # the plate in this frame (full-resolution pixels)
    image: Image


@dataclass(frozen=True, slots=True, eq=False)
class VehiclePass:
    """One vehicle's pass through the view: the frames of one track, voted into one read.

    ``best`` is the sighting whose frame supplies any image the policy allows; ``overview``
    is that frame's full image, held in memory only until the privacy stage decides.
    """

    track_id: int
    plate: str
    display: str
    format_name: str | None
    confidence: float
    first_seen: datetime
    last_seen: datetime
    sightings: int
    best: PlateRead
    overview: Image
    direction: str | None = None  # "approaching" | "receding" | None when unknown
    angle_deg: float | None = None
    zone: str | None = None
    char_confidences: tuple[float, ...] = field(default=())
    preview: bool = False  # an early read of a track still in view; its final pass follows
    views: tuple[View, ...] = ()  # earlier frames of the pass (PlateTracker(views=...)), for face redaction
    others: tuple[Box, ...] = ()  # the other plates in the overview's frame (read, or predicted for an open track)
    unconstrained: str | None = None  # the reader's own best reading where a format bent it away from ``plate``
    overview_camera: bool = False  # ``overview`` is the overview camera's frame (empty: none near), not the plate's


@dataclass(frozen=True, slots=True)
class Redaction:
    """What the redaction stage did to one image (the redaction record published with it)."""

    detector: str
    model_sha256: str
    threshold: float
    regions: int
    second_pass_faces: int


@dataclass(frozen=True, slots=True)
class AuditNote:
    """What the audit log records of a read that is to leave: the field names, never their content."""

    fields: tuple[str, ...]
    image: bool
    policy_version: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message ready for the outbox: topic, JSON payload (already policy-filtered), id.

    ``seq`` (the read's sequence number) and ``audit`` are committed with it in one transaction.
    """

    message_id: str
    topic: str
    payload: bytes
    captured_at: datetime
    kind: str = "read"
    seq: int | None = None
    audit: AuditNote | None = None


def as_image(array: object) -> Image:
    """View an OpenCV result as an 8-bit image (no copy when it already is one)."""
    return np.asarray(array, dtype=np.uint8)
