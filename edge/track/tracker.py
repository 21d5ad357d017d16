"""Plate tracker: associates sightings across frames by box overlap and text, ends tracks on a gap
or a maximum delay, and votes each track into one :class:`VehiclePass`.

All timing uses frame timestamps, never the wall clock, so a replay gives the same passes every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge.config import TrackConfig
from edge.domain import Image, PlateRead, VehiclePass
from edge.track.vote import vote


@dataclass
class _Track:
    track_id: int
    sightings: list[PlateRead] = field(default_factory=list)
    best: PlateRead | None = None
    best_score: float = -1.0
    overview: Image | None = None
    published: bool = False

    @property
    def first_seen(self) -> datetime:
        return self.sightings[0].timestamp

    @property
    def last_seen(self) -> datetime:
        return self.sightings[-1].timestamp

    def add(self, read: PlateRead, image: Image) -> None:
        self.sightings.append(read)
        score = read.detection.box.area * read.confidence * (1.5 if read.valid else 1.0)
        if score > self.best_score:
            self.best, self.best_score, self.overview = read, score, image


class PlateTracker:
    """Feeds on each frame's reads; returns the passes that are complete."""

    def __init__(self, config: TrackConfig) -> None:
        self.config = config
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._recent: dict[str, datetime] = {}  # plate -> last seen of its last published pass
        self.suppressed_repeats = 0

    def update(self, timestamp: datetime, reads: list[PlateRead], image: Image) -> list[VehiclePass]:
        for read in reads:
            track = self._match(read)
            if track is None:
                track = _Track(self._next_id)
                self._next_id += 1
                self._tracks.append(track)
            track.add(read, image)
        return self._collect(timestamp)

    def flush(self) -> list[VehiclePass]:
        """End every open track (end of a replay, or shutdown)."""
        done = [p for t in self._tracks if (p := self._finish(t)) is not None]
        self._tracks.clear()
        return done

    @property
    def open_tracks(self) -> int:
        return len(self._tracks)

    def _match(self, read: PlateRead) -> _Track | None:
        best, best_iou = None, self.config.match_iou
        for track in self._tracks:
            last = track.sightings[-1]
            if last.frame_index == read.frame_index:
                continue  # one sighting per track per frame: side-by-side plates stay apart
            iou = last.detection.box.iou(read.detection.box)
            if iou >= best_iou or (read.text == last.text and _near(last, read)):
                best, best_iou = track, max(iou, best_iou)
        return best

    def _collect(self, now: datetime) -> list[VehiclePass]:
        gap = timedelta(seconds=self.config.max_gap_s)
        delay = timedelta(seconds=self.config.max_delay_s)
        done: list[VehiclePass] = []
        still: list[_Track] = []
        for track in self._tracks:
            if now - track.last_seen > gap:
                if (p := self._finish(track)) is not None:
                    done.append(p)
                continue
            if not track.published and now - track.first_seen >= delay and (p := self._finish(track)):
                done.append(p)  # a parked or queued vehicle: published once, then kept quiet
            still.append(track)
        self._tracks = still
        return done

    def _finish(self, track: _Track) -> VehiclePass | None:
        if track.published or len(track.sightings) < self.config.min_sightings:
            return None
        track.published = True
        if track.best is None or track.overview is None:
            return None
        voted = vote(track.sightings)
        previous = self._recent.get(voted.text)
        if previous is not None and track.first_seen - previous < timedelta(seconds=self.config.repeat_gap_s):
            self._recent[voted.text] = track.last_seen
            self.suppressed_repeats += 1
            return None
        self._recent[voted.text] = track.last_seen
        direction, angle = _direction(track.sightings)
        return VehiclePass(
            track_id=track.track_id,
            plate=voted.text,
            display=voted.display,
            format_name=voted.format_name,
            confidence=voted.confidence,
            first_seen=track.first_seen,
            last_seen=track.last_seen,
            sightings=len(track.sightings),
            best=track.best,
            overview=track.overview,
            direction=direction,
            angle_deg=angle,
            char_confidences=voted.char_confidences,
        )


def _near(a: PlateRead, b: PlateRead) -> bool:
    (ax, ay), (bx, by) = a.detection.box.centre, b.detection.box.centre
    return math.hypot(ax - bx, ay - by) < 3.0 * max(a.detection.box.w, b.detection.box.w)


def _direction(sightings: list[PlateRead]) -> tuple[str | None, float | None]:
    if len(sightings) < 2:
        return None, None
    first, last = sightings[0].detection.box, sightings[-1].detection.box
    (x0, y0), (x1, y1) = first.centre, last.centre
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0)) if (x0, y0) != (x1, y1) else None
    growth = last.w / first.w if first.w else 1.0
    if growth > 1.1:
        return "approaching", angle
    if growth < 0.9:
        return "receding", angle
    return None, angle
