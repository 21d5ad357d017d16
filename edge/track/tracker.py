"""Plate tracker: one track per vehicle, one pass per track.

Each frame's sightings are matched to the open tracks by a score of three cues: overlap with the
box each track predicts for this frame (constant velocity, so a track coasts through a few missed
detections; a track seen fewer than three times is looked for where it was last seen, as one stray
box would give it a wild velocity), distance from that prediction in plate widths, and text
similarity with the track's most confident and latest reads (so two plates side by side, or
crossing, keep their own tracks). Pairs are assigned
greedily, best score first, at most one sighting per track per frame.

A track ends when unseen for ``max_gap_s``, or sooner (``exit_gap_s``) when its predicted box has
left the frame. Its pass is published when it ends or ``max_delay_s`` after first seen, whichever
comes first; a parked or queued vehicle is published once and then kept quiet for as long as it
is seen. The same plate seen again within ``repeat_gap_s`` of its last sighting is no new pass.

A read that is a *fragment* of a longer read at the same place (boxes that overlap or stand side by side,
as a GB sticker beside its plate; one text a part of the other, allowing a misread or two: :func:`fragment_of`)
is the same vehicle, not another: it starts no track of its own when the longer read is in the same frame,
and a track whose pass would be such a fragment of another track, open or just published, is not published.

A *wary* pass (a format so loose that any fragment fits it, ``track.wary_formats``: the UK dateless format by
default, or a read of three characters or fewer) needs more evidence: at least ``track.wary_sightings``
sightings, and at least ``track.min_sightings`` of its reads spelling it from a crop that is a whole plate
(:attr:`PlateRead.whole`). Otherwise it counts as a weak track.

All timing uses frame timestamps, never the wall clock, so a replay gives the same passes every time.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge.config import TrackConfig
from edge.domain import Box, Image, PlateRead, VehiclePass, View
from edge.read.crop import FormatMatcher
from edge.track.motion import Motion, direction_of, inside, out_of_frame, sharpness
from edge.track.vote import read_weight, similarity, vote

log = logging.getLogger(__name__)

MIN_SIZE_RATIO = 0.5  # a sighting's width against the predicted width, for it to join a track
TEXT_MATCH = 0.7  # text similarity that lets a sighting join from farther away (after a gap)
TEXT_CONFLICT = 0.35  # below this similarity two reads of 4+ characters are different plates...
SAME_PLACE_IOU = 0.3  # ...unless their boxes overlap this much (then it is one plate, misread)
VALID_BEST = 1.5  # best-frame score factor for a read that fits a format
MIN_MOTION_SIGHTINGS = 3  # sightings before a track's velocity is used to predict where it goes
MAX_READS = 128  # reads a track keeps for voting (a long wait keeps every other one)
VIEW_GAP_S = 0.2  # frames kept as views of a pass are at least this far apart
SHORT_READ = 3  # a read of at most this many characters is wary, whatever its format
LOOK_ALIKE = ("0ODQ", "1I", "5S", "8B", "2Z", "6G")  # a misread between these costs half in a fragment's alignment


@dataclass
class _Recent:
    """A published pass, kept for ``repeat_gap_s`` after its last sighting to suppress repeats."""

    plate: str
    last_seen: datetime
    box: Box
    valid: bool = True  # the pass fitted a format


@dataclass
class _Track:
    track_id: int
    motion: Motion
    first: PlateRead
    last: PlateRead
    reads: list[PlateRead] = field(default_factory=list)  # kept for voting: at most MAX_READS
    sightings: int = 0
    zones: Counter[str] = field(default_factory=Counter)
    best: PlateRead | None = None
    best_score: float = -1.0
    overview: Image | None = None
    others: tuple[Box, ...] = ()  # the other plates in the overview's frame (read there, or predicted)
    views: list[View] = field(default_factory=list)  # earlier best frames, for face redaction
    _last_view: datetime | None = None  # when the latest view's frame was taken
    text: str = ""  # text of the most confident read so far (for matching)
    text_weight: float = -1.0
    text_valid: bool = False  # that read fitted a format
    published: _Recent | None = None  # set once its pass is out (or it was suppressed as a repeat)
    previewed: bool = False
    deferred: bool = False  # its read was too weak at max_delay_s: tried again when it ends

    @property
    def first_seen(self) -> datetime:
        return self.first.timestamp

    @property
    def last_seen(self) -> datetime:
        return self.last.timestamp

    def add(self, read: PlateRead, image: Image, zone: str | None, keep_views: int = 0,
            frame_plates: tuple[Box, ...] = ()) -> None:
        if self.sightings:
            self.motion = self.motion.updated(read.detection.box, read.timestamp)
        self.sightings += 1
        self.last = read
        if self.published is not None:  # a parked or queued vehicle: follow it, keep nothing more
            self.published.last_seen = read.timestamp
            self.published.box = read.detection.box
            return
        self.reads.append(read)
        if len(self.reads) > MAX_READS:  # bounded memory: thin out the middle, keep the first read
            del self.reads[1::2]
        if zone is not None:
            self.zones[zone] += 1
        weight = read_weight(read)
        if weight > self.text_weight:
            self.text, self.text_weight, self.text_valid = read.text, weight, read.valid
        score = read.detection.box.area * (0.2 + sharpness(read.crop)) * read.confidence
        score *= VALID_BEST if read.valid else 1.0
        if score > self.best_score:
            if keep_views and self.best is not None and self.overview is not None:
                self._keep_view(self.best, self.overview, keep_views)
            self.best, self.best_score, self.overview = read, score, image
            self.others = tuple(b for b in frame_plates if b is not read.detection.box)

    def _keep_view(self, read: PlateRead, image: Image, keep: int) -> None:
        """The frame of a best sighting that gives way becomes a view, if far enough from the last one kept."""
        if self._last_view is not None and (read.timestamp - self._last_view).total_seconds() < VIEW_GAP_S:
            return
        self.views.append(View(read.detection.box, image))
        self._last_view = read.timestamp
        del self.views[:-keep]


def _predict(track: _Track, now: datetime) -> Box:
    """Where the track's plate is expected at ``now``. A velocity from fewer than MIN_MOTION_SIGHTINGS
    sightings is not trusted (one stray box beside the plate would send the prediction far away, or out
    of the frame while the plate is still in it): such a track is looked for where it was last seen."""
    if track.motion.observations >= MIN_MOTION_SIGHTINGS:
        return track.motion.predict(now)
    return track.last.detection.box


def _text_similarity(track: _Track, text: str) -> float:
    """How alike ``text`` is to the track's text: its most confident read's, or its latest read's (a
    misread that fits a format can outweigh the true reads, yet the next read still follows the last)."""
    if not text:
        return 0.0
    return max((similarity(t, text) for t in {track.text, track.last.text} if t), default=0.0)  # often one text


class PlateTracker:
    """Feeds on each frame's reads; returns the passes that are complete (and previews, if enabled)."""

    def __init__(self, config: TrackConfig, formats: FormatMatcher | None = None, *, views: int = 0) -> None:
        """``views``: earlier frames each pass keeps beside its overview (0: none; they cost memory), so the
        privacy stage can cover in the overview a face that only another frame showed."""
        self.config = config
        self.formats = formats
        self.views = views
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._recent: list[_Recent] = []
        self.suppressed_repeats = 0
        self.weak_passes = 0  # tracks dropped for too short or too unsure a read
        self.fragments = 0  # reads and tracks dropped as fragments of a longer read at the same place
        self.excluded = 0
        self._frame_size = (0, 0)

    @property
    def open_tracks(self) -> int:
        return len(self._tracks)

    def update(self, timestamp: datetime, reads: list[PlateRead], image: Image, keep: Image | None = None,
               ) -> list[VehiclePass]:
        """The reads of the frame ``image`` (its size places them); a track whose best read this becomes keeps
        ``keep`` as its overview (default: ``image``; with an overview camera, that camera's frame nearest this
        one, so the plate camera's frame is let go)."""
        height, width = image.shape[:2]
        self._frame_size = (width, height)
        kept: list[tuple[PlateRead, str | None]] = []
        for read in reads:
            if any(_fragment_read(read, other) for other in reads):
                self.fragments += 1  # a part of a longer read beside it: the same plate, read twice
                continue
            zone, excluded = self._zone(read.detection.box, width, height)
            if excluded:
                self.excluded += 1
            else:
                kept.append((read, zone))
        assigned = self._assign(timestamp, [r for r, _ in kept])
        plates = self._plates_in_frame(timestamp, reads, assigned)
        for (read, zone), match in zip(kept, assigned, strict=True):
            track = match
            if track is None:
                track = _Track(self._next_id, Motion.start(read.detection.box, read.timestamp), read, read)
                self._next_id += 1
                self._tracks.append(track)
            track.add(read, image if keep is None else keep, zone, self.views, plates)
        return self._collect(timestamp)

    def _plates_in_frame(self, now: datetime, reads: list[PlateRead], assigned: list[_Track | None]) -> tuple[Box, ...]:
        """Every plate in the frame: those read (excluded zones too) and, for each open track not read in it (a
        small plate is looked for on every 2nd frame, and not at all while another crop reads as a plate), where
        its plate is predicted: the other vehicles the tracker still follows."""
        seen = {id(t) for t in assigned if t is not None}
        missed = (_predict(t, now) for t in self._tracks if id(t) not in seen)
        return (*(r.detection.box for r in reads), *missed)

    def flush(self) -> list[VehiclePass]:
        """End every open track (end of a replay, or shutdown)."""
        done = [p for t in self._tracks if (p := self._finish(t)) is not None]
        self._tracks.clear()
        return done

    # -- association ---------------------------------------------------------------------------

    def _assign(self, now: datetime, reads: list[PlateRead]) -> list[_Track | None]:
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            predicted = _predict(track, now)
            gap_s = (now - track.last_seen).total_seconds()
            for ri, read in enumerate(reads):
                score = self._score(track, predicted, gap_s, read)
                if score is not None:
                    pairs.append((score, ti, ri))
        pairs.sort(key=lambda p: (-p[0], self._tracks[p[1]].track_id, p[2]))
        result: list[_Track | None] = [None] * len(reads)
        taken: set[int] = set()
        for _, ti, ri in pairs:
            if ti in taken or result[ri] is not None:
                continue
            taken.add(ti)
            result[ri] = self._tracks[ti]
        return result

    def _score(self, track: _Track, predicted: Box, gap_s: float, read: PlateRead) -> float | None:
        """How well ``read`` continues ``track`` (higher is better), or None when it cannot."""
        if track.last.frame_index == read.frame_index:
            return None
        box = read.detection.box
        ratio = box.w / max(1, predicted.w)
        if not MIN_SIZE_RATIO <= ratio <= 1.0 / MIN_SIZE_RATIO:
            return None
        iou = predicted.iou(box)
        (px, py), (bx, by) = predicted.centre, box.centre
        dist = math.hypot(px - bx, py - by) / max(1, predicted.w, box.w)
        reach = self.config.max_jump * (1.0 + 2.0 * gap_s)
        text = _text_similarity(track, read.text)
        if iou < SAME_PLACE_IOU and min(len(track.text), len(read.text)) >= 4 and text < TEXT_CONFLICT:
            return None  # two well-read, different plates: another vehicle, however near
        if iou < self.config.match_iou and out_of_frame(predicted, *self._frame_size):
            return None  # the track has left the frame: only an overlapping sighting continues it
        if iou < self.config.match_iou and dist > reach and not (text >= TEXT_MATCH and dist <= 3 * reach):
            return None
        return iou + max(0.0, 1.0 - dist / reach) + text

    def _zone(self, box: Box, width: int, height: int) -> tuple[str | None, bool]:
        if not self.config.zones or width == 0 or height == 0:
            return None, False
        cx, cy = box.centre
        x, y = cx / width, cy / height
        lane = None
        for zone in self.config.zones:
            if inside(zone.polygon, x, y):
                if zone.kind == "exclude":
                    return None, True
                lane = lane or zone.name
        return lane, False

    # -- ending and publishing -----------------------------------------------------------------

    def _collect(self, now: datetime) -> list[VehiclePass]:
        cfg = self.config
        gap, exit_gap = timedelta(seconds=cfg.max_gap_s), timedelta(seconds=cfg.exit_gap_s)
        delay = timedelta(seconds=cfg.max_delay_s)
        done: list[VehiclePass] = []
        still: list[_Track] = []
        for track in self._tracks:
            unseen = now - track.last_seen
            left = unseen >= exit_gap and out_of_frame(_predict(track, now), *self._frame_size)
            if unseen > gap or left:
                if (p := self._finish(track)) is not None:
                    done.append(p)
                continue
            still.append(track)
            if track.published is None and not track.deferred and now - track.first_seen >= delay:
                if (p := self._finish(track, final=False)) is not None:
                    done.append(p)  # a parked or queued vehicle: published once, then kept quiet
            elif self._preview_due(track, now) and (p := self._pass(track, preview=True)) is not None:
                track.previewed = True
                done.append(p)
        self._tracks = still
        self._forget(now)
        return done

    def _preview_due(self, track: _Track, now: datetime) -> bool:
        after = self.config.preview_after_s
        return (
            after is not None
            and not track.previewed
            and track.published is None
            and track.sightings >= self.config.min_sightings
            and now - track.first_seen >= timedelta(seconds=after)
        )

    def _finish(self, track: _Track, *, final: bool = True) -> VehiclePass | None:
        """The track's pass, or None (too few sightings, too weak a read, a repeat, already published).

        A read too weak at ``max_delay_s`` (``final`` False) is tried once more when the track ends.
        """
        if track.published is not None or track.sightings < self.config.min_sightings:
            return None
        vehicle_pass = self._pass(track, preview=False)
        if vehicle_pass is None:
            return None
        if (len(vehicle_pass.plate) < self.config.min_chars or vehicle_pass.confidence < self.config.min_confidence
                or not self._enough_evidence(track, vehicle_pass)):
            if final:
                self.weak_passes += 1
                log.debug("track %d read too weakly to be a pass (%d characters, confidence %.2f, %d sightings)",
                          track.track_id, len(vehicle_pass.plate), vehicle_pass.confidence, track.sightings)
            track.deferred = True
            return None
        if self._fragment_of_another(track, vehicle_pass):
            track.published = _Recent(vehicle_pass.plate, track.last_seen, track.last.detection.box)
            self.fragments += 1
            log.debug("track %d (%s) is a fragment of a longer read at the same place; not published",
                      track.track_id, vehicle_pass.plate)
            return None
        recent = self._repeat_of(vehicle_pass.plate, track)
        if recent is not None:
            recent.last_seen = max(recent.last_seen, track.last_seen)
            track.published = recent
            self.suppressed_repeats += 1
            log.debug("track %d is a repeat of a pass already published; not published", track.track_id)
            return None
        track.published = _Recent(vehicle_pass.plate, track.last_seen, track.last.detection.box,
                                  vehicle_pass.format_name is not None)
        self._recent.append(track.published)
        return vehicle_pass

    def _enough_evidence(self, track: _Track, vehicle_pass: VehiclePass) -> bool:
        """A wary pass (a loose format, or a short read) needs ``wary_sightings`` sightings and
        ``min_sightings`` whole-plate reads of its text; any other pass has enough already."""
        cfg = self.config
        if vehicle_pass.format_name not in cfg.wary_formats and len(vehicle_pass.plate) > SHORT_READ:
            return True
        whole = sum(1 for r in track.reads if r.whole and r.text == vehicle_pass.plate)
        return track.sightings >= cfg.wary_sightings and whole >= cfg.min_sightings

    def _fragment_of_another(self, track: _Track, vehicle_pass: VehiclePass) -> bool:
        """Whether the pass is a fragment of a longer read of another track at the same place: one still open
        (seen within ``max_gap_s``), or a pass published within ``repeat_gap_s``."""
        plate, valid = vehicle_pass.plate, vehicle_pass.format_name is not None
        boxes = (track.first.detection.box, track.last.detection.box)
        gap = timedelta(seconds=self.config.max_gap_s)
        for other in self._tracks:
            if other is track or abs(other.last_seen - track.last_seen) > gap:
                continue
            near = _predict(other, track.last_seen)
            texts = [(t, other.text_valid if t == other.text else other.last.valid)
                     for t in dict.fromkeys((other.text, other.last.text)) if t]
            if any(_same_place(b, near) for b in boxes) and any(
                    (v or not valid) and fragment_of(plate, t) for t, v in texts):
                return True
        window = timedelta(seconds=self.config.repeat_gap_s)
        return any(
            track.first_seen - r.last_seen < window and (r.valid or not valid) and fragment_of(plate, r.plate)
            and any(_same_place(b, r.box) for b in boxes)
            for r in self._recent
        )

    def _repeat_of(self, plate: str, track: _Track) -> _Recent | None:
        window = timedelta(seconds=self.config.repeat_gap_s)
        first_box = track.first.detection.box
        for recent in self._recent:
            if track.first_seen - recent.last_seen >= window:
                continue
            same_place = recent.box.iou(first_box) > SAME_PLACE_IOU
            if recent.plate == plate or (same_place and similarity(recent.plate, plate) >= TEXT_MATCH):
                return recent
        return None

    def _forget(self, now: datetime) -> None:
        window = timedelta(seconds=self.config.repeat_gap_s)
        live = {id(t.published) for t in self._tracks if t.published is not None}
        self._recent = [r for r in self._recent if now - r.last_seen < window or id(r) in live]

    def _pass(self, track: _Track, *, preview: bool) -> VehiclePass | None:
        if track.best is None or track.overview is None:
            return None
        try:
            voted = vote(track.reads, self.formats)
        except ValueError:
            return None
        t0 = track.first_seen
        direction, angle = direction_of(
            [(r.timestamp - t0).total_seconds() for r in track.reads], [r.detection.box for r in track.reads],
            self._frame_size,
        )
        zone = min(track.zones, key=lambda z: (-track.zones[z], z)) if track.zones else None
        return VehiclePass(
            track_id=track.track_id,
            plate=voted.text,
            display=voted.display,
            format_name=voted.format_name,
            confidence=voted.confidence,
            first_seen=track.first_seen,
            last_seen=track.last_seen,
            sightings=track.sightings,
            best=track.best,
            overview=track.overview,
            direction=direction,
            angle_deg=angle,
            zone=zone,
            char_confidences=voted.char_confidences,
            preview=preview,
            views=tuple(track.views),
            others=track.others,
            unconstrained=voted.unconstrained if voted.unconstrained not in ("", voted.text) else None,
        )


def _fragment_read(read: PlateRead, other: PlateRead) -> bool:
    """``read`` is a fragment of ``other``, read in the same frame at the same place (and ``other`` fits a
    format, or ``read`` does not either: a fitting read is never dropped for an unfitted longer one)."""
    return (other is not read and (other.valid or not read.valid) and fragment_of(read.text, other.text)
            and _same_place(read.detection.box, other.detection.box))


def _same_place(a: Box, b: Box) -> bool:
    """Boxes that overlap, or stand side by side (sharing at least half the lower one's rows, at most the taller
    one's height apart: a sticker beside its plate)."""
    if a.intersection(b) > 0:
        return True
    rows = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    gap = max(a.x - (b.x + b.w), b.x - (a.x + a.w))
    return rows >= 0.5 * min(a.h, b.h) and gap <= max(a.h, b.h)


def fragment_of(short: str, long: str) -> bool:
    """Whether ``short`` reads a part of ``long``: shorter, and the cheapest alignment of the whole of ``short``
    onto some stretch of ``long`` (edits cost 1, a look-alike swap such as O/D or 5/S costs 0.5) costs at most
    half of ``short``'s characters, with at least two characters alike. ``O441`` is a fragment of ``173D441``,
    and so are ``GBO44`` (a GB sticker read with the plate's D44) and ``1304O``."""
    if not 2 <= len(short) < len(long):
        return False

    def sub(a: str, b: str) -> float:
        if a == b:
            return 0.0
        return 0.5 if any(a in g and b in g for g in LOOK_ALIKE) else 1.0

    # cost[j]: the cheapest alignment of short[:i] ending at long[:j] (a stretch of long may start anywhere)
    cost = [0.0] * (len(long) + 1)
    same = [0] * (len(long) + 1)  # characters alike on that alignment
    for i, a in enumerate(short, 1):
        new, new_same = [float(i)] + [0.0] * len(long), [0] * (len(long) + 1)
        for j, b in enumerate(long, 1):
            options = [
                (cost[j - 1] + sub(a, b), same[j - 1] + (a == b)),
                (cost[j] + 1.0, same[j]),  # a character of short that long does not have
                (new[j - 1] + 1.0, new_same[j - 1]),  # a character of long that short lost
            ]
            new[j], new_same[j] = min(options, key=lambda o: (o[0], -o[1]))
        cost, same = new, new_same
    best = min(range(len(long) + 1), key=lambda j: (cost[j], -same[j]))
    return cost[best] <= 0.5 * len(short) and same[best] >= 2
