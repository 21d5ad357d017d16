"""Score a replay's vehicle passes against ground truth, and write the tester's HTML report (with or without truth).

Truth is a CSV with ``plate,first_seen_s,last_seen_s`` and optionally ``direction``: seconds from the
start of the recording, one row per vehicle pass. A found pass *matches* a truth pass when their
times overlap (each widened by ``slack_s``) and their texts are similar (1 - edit distance / length
at least ``min_similarity``); pairs are taken best first, one found pass per truth pass. Then:

- ``exact``: matched with the same text; ``misread``: matched with another text;
- ``missed``: a truth pass no found pass matched;
- ``duplicates``: a further found pass that would match an already matched truth pass;
- ``false_passes``: a found pass that matches no truth pass at all.

Preview reads (``VehiclePass.preview``) are not passes and are left out before scoring.

:class:`TimedSource` and :class:`PassRecorder` wrap a replay to measure it without touching its
decisions: the wall clock is read only to time frames and passes, never to decide anything.
"""

from __future__ import annotations

import csv
import html
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edge.capture import FrameSource
from edge.domain import Frame, Image, OutgoingMessage, VehiclePass
from edge.errors import ConfigError
from edge.read.formats import normalise
from edge.track.vote import similarity

Kind = Literal["exact", "misread", "missed", "duplicate", "false_pass"]
DIRECTIONS = ("approaching", "receding")
COLOURS: dict[str, str] = {
    "exact": "#2e7d32", "misread": "#ef6c00", "missed": "#c62828", "duplicate": "#6a1b9a", "false_pass": "#ad1457",
}


@dataclass(frozen=True, slots=True)
class TruthPass:
    plate: str
    first_s: float
    last_s: float
    direction: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class FoundPass:
    """A published pass, timed in seconds from the start of the recording."""

    plate: str
    first_s: float
    last_s: float
    direction: str | None = None
    confidence: float = 0.0
    track_id: int = 0
    crop: Image | None = field(default=None, repr=False)
    format_name: str | None = None
    unconstrained: str | None = None  # the reader's own best path where a format bent it away from ``plate``
    sightings: int = 0
    message_id: str | None = None  # None: the policy sent nothing for it


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    truth: TruthPass | None
    found: FoundPass | None
    similarity: float = 0.0


@dataclass(frozen=True, slots=True)
class Score:
    outcomes: tuple[Outcome, ...]
    passes_true: int
    passes_found: int

    def count(self, kind: Kind) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)

    @property
    def matched(self) -> int:
        return self.count("exact") + self.count("misread")

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind != "exact"]

    def direction_counts(self) -> tuple[int, int]:
        """(correct, scored): matched passes whose truth gives a direction."""
        pairs = [(o.truth.direction, o.found.direction) for o in self.outcomes
                 if o.kind in ("exact", "misread") and o.truth is not None and o.found is not None]
        scored = [(t, f) for t, f in pairs if t is not None]
        return sum(1 for t, f in scored if t == f), len(scored)

    def as_dict(self) -> dict[str, Any]:
        correct, scored = self.direction_counts()
        return {
            "passes_true": self.passes_true,
            "passes_found": self.passes_found,
            "matched": self.matched,
            "exact": self.count("exact"),
            "misread": self.count("misread"),
            "missed": self.count("missed"),
            "duplicates": self.count("duplicate"),
            "false_passes": self.count("false_pass"),
            "direction_correct": correct,
            "direction_scored": scored,
            "recall": round(self.matched / self.passes_true, 4) if self.passes_true else None,
            "exact_rate": round(self.count("exact") / self.passes_true, 4) if self.passes_true else None,
        }


def load_truth(path: str | Path) -> list[TruthPass]:
    """Read a truth CSV; errors name the file, the row and the bad value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"truth file {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    rows = list(csv.DictReader(text.splitlines()))
    needed = {"plate", "first_seen_s", "last_seen_s"}
    header = set(rows[0]) if rows else set()
    if rows and not needed <= header:
        raise ConfigError(f"truth file {str(path)!r} has columns {sorted(header)}; needs {sorted(needed)}"
                          " (and optionally direction)")
    out: list[TruthPass] = []
    for line, row in enumerate(rows, start=2):
        try:
            first, last = float(row["first_seen_s"]), float(row["last_seen_s"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}:{line}: first_seen_s/last_seen_s must be seconds, got "
                              f"{row.get('first_seen_s')!r}, {row.get('last_seen_s')!r}") from exc
        if last < first:
            raise ConfigError(f"{path}:{line}: last_seen_s {last} is before first_seen_s {first}")
        direction = (row.get("direction") or "").strip().lower() or None
        if direction is not None and direction not in DIRECTIONS:
            raise ConfigError(f"{path}:{line}: direction {direction!r} is not one of {list(DIRECTIONS)} (or empty)")
        plate = normalise(row["plate"] or "")
        if not plate:
            raise ConfigError(f"{path}:{line}: plate is empty")
        out.append(TruthPass(plate, first, last, direction))
    return out


def score(truth: Sequence[TruthPass], found: Sequence[FoundPass], *, slack_s: float = 1.0,
          min_similarity: float = 0.5) -> Score:
    """Match found passes to truth passes (see the module docstring) and classify every one."""

    def candidates(t: TruthPass, f: FoundPass) -> tuple[float, float] | None:
        overlap = min(t.last_s, f.last_s) - max(t.first_s, f.first_s)
        if overlap < -slack_s:
            return None
        sim = similarity(t.plate, f.plate)
        return (sim, overlap) if sim >= min_similarity else None

    pairs = sorted(
        ((c[0], c[1], ti, fi) for ti, t in enumerate(truth) for fi, f in enumerate(found)
         if (c := candidates(t, f)) is not None),
        key=lambda p: (-p[0], -p[1], p[2], p[3]),
    )
    truth_of: dict[int, int] = {}  # found index -> truth index (primary matches)
    matched_truth: dict[int, tuple[int, float]] = {}
    for sim, _, ti, fi in pairs:
        if ti in matched_truth or fi in truth_of:
            continue
        matched_truth[ti] = (fi, sim)
        truth_of[fi] = ti
    outcomes: list[Outcome] = []
    for ti, t in enumerate(truth):
        if ti in matched_truth:
            fi, sim = matched_truth[ti]
            f = found[fi]
            outcomes.append(Outcome("exact" if f.plate == t.plate else "misread", t, f, sim))
        else:
            outcomes.append(Outcome("missed", t, None))
    for fi, f in enumerate(found):
        if fi in truth_of:
            continue
        dup = next(((ti, sim) for sim, _, ti, i in pairs if i == fi and ti in matched_truth), None)
        if dup is not None:
            outcomes.append(Outcome("duplicate", truth[dup[0]], f, dup[1]))
        else:
            outcomes.append(Outcome("false_pass", None, f))
    return Score(tuple(outcomes), passes_true=len(truth), passes_found=len(found))


def table(result: Score) -> str:
    """A plain-text table of every pass and the counts, for the terminal."""
    lines = [f"{'outcome':<11} {'truth':<9} {'read':<9} {'truth s':>13} {'read s':>13} {'dir truth/read':<22}"]
    for o in sorted(result.outcomes, key=_start):
        t, f = o.truth, o.found
        t_span = f"{t.first_s:.1f}-{t.last_s:.1f}" if t else "-"
        f_span = f"{f.first_s:.1f}-{f.last_s:.1f}" if f else "-"
        lines.append(
            f"{o.kind:<11} {t.plate if t else '-':<9} {f.plate if f else '-':<9} {t_span:>13} {f_span:>13} "
            f"{(t.direction if t else None) or '-'}/{(f.direction if f else None) or '-'}"
        )
    d = result.as_dict()
    lines.append(
        f"truth {d['passes_true']}, found {d['passes_found']}: matched {d['matched']} (exact {d['exact']}, misread "
        f"{d['misread']}), missed {d['missed']}, duplicates {d['duplicates']}, false passes {d['false_passes']}, "
        f"direction {d['direction_correct']}/{d['direction_scored']}"
    )
    return "\n".join(lines)


def _start(o: Outcome) -> float:
    return o.truth.first_s if o.truth is not None else (o.found.first_s if o.found is not None else 0.0)


# What the replay summary's counts mean, shown under the report's summary table.
GLOSSARY: dict[str, str] = {
    "frames": "frames read from the source",
    "recording_s": "how long the recording is, in seconds (the timeline spans it)",
    "detect_every": "plates were looked for on every N-th frame (detect.every_n_frames)",
    "workers": "threads that detected and read the frames (detect.workers; any number gives the same reads)",
    "passes": "vehicle passes: tracks whose voted read was good enough to be a pass (previews left out), "
              "including those then held back because their read fits no allowed format (unfitted_dropped)",
    "unfitted_dropped": "passes whose read fits none of read.formats: not published, because signs, walls and "
                        "road markings read as text rarely fit a plate format (read.publish_unfitted: true "
                        "publishes them with format 'none')",
    "previews": "early preview reads sent before a pass ended (track.preview_after_s); not passes",
    "weak_tracks": "tracks the node saw but never read well enough to be a pass (fewer than track.min_chars "
                   "characters, or a voted confidence below track.min_confidence, or a wary read, dateless or of "
                   "3 characters or fewer, without track.wary_sightings sightings and whole-plate crops, when the "
                   "track ended): nothing published; many of them mean plates too small, blurred or dark to read",
    "fragments": "reads and tracks that were part of a longer read at the same place (a crop of part of a "
                 "plate, a sticker beside it): the same vehicle, not published as another",
    "repeats_suppressed": "tracks whose plate had already been published by a pass within track.repeat_gap_s "
                          "(the same vehicle found again, e.g. after it was hidden for a moment): merged into "
                          "that pass, not published twice",
    "sightings_excluded": "plate sightings inside an exclude zone (track.zones), dropped",
    "frames_dropped": "frames skipped because detection fell behind (realtime replays only) or unreadable",
    "decode_failures": "frames of the recording that could not be decoded (a damaged file): skipped and counted",
    "frames_refused": "frames or images refused before decoding because they declare more than "
                      "capture.max_pixels pixels",
    "overview_frames": "frames of the overview camera's recording read for pairing (--overview)",
    "overview_missing": "passes whose best read had no overview camera frame within capture.overview.tolerance_s: "
                        "published without an overview image",
    "overview_dropped": "overview frames pushed out of the buffer (capture.overview.buffer_frames) before the plate "
                        "recording's time reached them",
    "messages": "read messages queued in the outbox (one per pass the policy lets out)",
    "published": "read messages the broker acknowledged (0 without a broker)",
    "outbox_depth": "read messages still waiting in the outbox at the end (sent when a broker is reachable)",
    "passes_true": "vehicles in the truth file",
    "passes_found": "passes the node published (what was scored against the truth)",
    "matched": "truth vehicles matched by a pass of overlapping time and similar text",
    "exact": "matched passes whose plate text is exactly the truth's",
    "misread": "matched passes whose plate text differs from the truth's",
    "missed": "truth vehicles no pass matched",
    "duplicates": "further passes matching a truth vehicle that an earlier pass already matched",
    "false_passes": "passes matching no truth vehicle: text that is not a readable plate, or a plate the truth "
                    "leaves out",
    "direction_correct": "matched passes whose direction equals the truth's (of direction_scored)",
    "direction_scored": "matched passes whose truth gives a direction",
}


def write_report(
    directory: str | Path,
    summary: dict[str, Any],
    *,
    title: str,
    found: Sequence[FoundPass],
    result: Score | None = None,
    frame_at: Callable[[float], Image | None] | None = None,
    recording_s: float | None = None,
) -> Path:
    """``index.html``: the summary (with what its counts mean), a timeline over the whole recording
    (``recording_s`` long, when known), every pass with its crop (small ones shown enlarged, pixel for pixel),
    confidence, format and direction, and, given a scored ``result``, the outcome of each and the errors.

    A missed pass has no crop; given ``frame_at`` (seconds -> frame), a small still from the middle of
    its truth interval stands in, so a tester can see what the node missed.
    """
    out = Path(directory)
    crops = out / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    kind_of = {id(o.found): o.kind for o in result.outcomes if o.found is not None} if result else {}
    truth_of = {id(o.found): o.truth for o in result.outcomes if o.found is not None} if result else {}
    passes = []
    for n, f in enumerate(sorted(found, key=lambda f: f.first_s)):
        img = _crop_img(out, f"crops/pass-{n:03d}-{_safe(f.plate)}.png", f.crop, f.plate)
        kind = kind_of.get(id(f))
        truth = truth_of.get(id(f))
        scored = (f"<td style='color:{COLOURS[kind]}'>{kind}</td><td>{_esc(truth.plate if truth else '-')}</td>"
                  if kind else "")
        passes.append(
            f"<tr><td>{n + 1}</td><td>{f.first_s:.1f}-{f.last_s:.1f}</td><td class='plate'>{_esc(f.plate)}"
            f"{'<br><small>model read ' + _esc(f.unconstrained) + '</small>' if f.unconstrained else ''}</td>"
            f"<td>{f.confidence:.2f}</td><td>{_esc(f.format_name or 'none')}</td>"
            f"<td>{_esc(f.direction or 'unknown')}</td>"
            f"<td>{f.sightings}</td>{scored}<td>{img or 'no crop'}</td>"
            f"<td class='id'>{_esc(f.message_id or 'not sent (policy)')}</td></tr>"
        )
    errors = _error_rows(out, result, frame_at) if result is not None else []
    counts = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td><td class='note'>{_esc(GLOSSARY.get(k, ''))}</td>"
        "</tr>" for k, v in summary.items() if not isinstance(v, (list, dict)))
    scored_head = "<th>outcome</th><th>truth</th>" if result is not None else ""
    if result is not None:
        legend = ("Grey: truth (when the plate is in view). Coloured: published passes (" + ", ".join(
            f"<span style='color:{c}'>{k}</span>" for k, c in COLOURS.items() if k != "missed") + "); red: missed.")
        timeline = timeline_svg(result, end_s=recording_s)
    else:
        legend = ("One bar per published pass, from first to last sighting, coloured by confidence (green sure, "
                  "orange unsure). No truth was given: pass <code>--truth CSV</code> to score the reads.")
        timeline = passes_svg(found, end_s=recording_s)
    if result is None:
        error_part = ""
    elif not errors:
        error_part = "<h2>Errors (0)</h2><p>None: every truth pass was read exactly, once.</p>"
    else:
        error_part = (f"<h2>Errors ({len(errors)})</h2><table><tr><th>outcome</th><th>truth</th><th>read</th>"
                      f"<th>time s</th><th>crop</th></tr>{''.join(errors)}</table>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{padding:2px 8px;
text-align:left;border-bottom:1px solid #ddd;vertical-align:middle}}img{{max-height:60px}}img.still{{max-height:180px}}
img.enlarged{{max-height:none;image-rendering:pixelated}}
td.note{{color:#555;font-size:90%;max-width:50em}}td.plate{{font-family:monospace;font-size:120%}}
td.id{{font-family:monospace;font-size:80%;color:#555}}</style></head><body>
<h1>{html.escape(title)}</h1><h2>Summary</h2><table>{counts}</table>
<h2>Timeline (seconds from the start of the recording)</h2><p>{legend}</p>
{timeline}
{error_part}
<h2>Passes ({len(passes)})</h2><table><tr><th>#</th><th>time s</th><th>plate</th><th>confidence</th><th>format</th>
<th>direction</th><th>sightings</th>{scored_head}<th>best crop</th><th>message id</th></tr>
{"".join(passes)}</table></body></html>"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


CROP_MIN_WIDTH = 160  # px: a smaller crop is shown enlarged by a whole factor, so its pixels stay sharp squares


def _crop_img(out: Path, name: str, crop: Image | None, alt: str) -> str:
    """The crop saved as it was, and shown at least CROP_MIN_WIDTH wide (its size in the tooltip)."""
    if crop is None or not crop.size:
        return ""
    cv2.imwrite(str(out / name), crop)
    h, w = crop.shape[:2]
    factor = -(-CROP_MIN_WIDTH // w)  # ceiling
    if factor <= 1:
        return f'<img src="{html.escape(name)}" alt="{html.escape(alt)}" title="{w}x{h} px">'
    return (f'<img class="enlarged" src="{html.escape(name)}" alt="{html.escape(alt)}" width="{w * factor}" '
            f'height="{h * factor}" title="{w}x{h} px, shown {factor}x">')


def _error_rows(out: Path, result: Score, frame_at: Callable[[float], Image | None] | None) -> list[str]:
    rows = []
    for n, o in enumerate(sorted(result.errors, key=_start)):
        img = ""
        if o.found is not None:
            img = _crop_img(out, f"crops/{n:03d}-{o.kind}-{_safe(o.found.plate)}.png", o.found.crop, o.found.plate)
        elif o.truth is not None and frame_at is not None:
            still = frame_at((o.truth.first_s + o.truth.last_s) / 2.0)
            if still is not None:
                name = f"crops/{n:03d}-{o.kind}-{_safe(o.truth.plate)}.jpg"
                width = 320
                small = cv2.resize(still, (width, max(1, round(still.shape[0] * width / still.shape[1]))),
                                   interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(out / name), small)
                img = f'<img class="still" src="{html.escape(name)}" alt="frame at the middle of the missed pass">'
        rows.append(
            f"<tr><td style='color:{COLOURS[o.kind]}'>{o.kind}</td><td>{_esc(o.truth.plate if o.truth else '-')}</td>"
            f"<td>{_esc(o.found.plate if o.found else '-')}</td><td>{_span(o)}</td><td>{img or 'no read'}</td></tr>"
        )
    return rows


def passes_svg(found: Sequence[FoundPass], width: int = 1000, row_h: int = 16, *, end_s: float | None = None) -> str:
    """One row per published pass: a bar from first to last sighting, green when sure, orange when not; the axis
    runs to ``end_s`` (the recording's end) or the last pass."""
    passes = sorted(found, key=lambda f: f.first_s)
    end = max([1.0, end_s or 0.0] + [f.last_s for f in passes])
    left, scale = 110, (width - 140) / end  # room on the right for the last tick
    parts = []
    for row, f in enumerate(passes):
        y = 20 + row * row_h
        colour = COLOURS["exact"] if f.confidence >= 0.9 else COLOURS["misread"]
        parts.append(f'<text x="2" y="{y + 10}" font-size="11">{_esc(f.plate)}</text>')
        parts.append(_bar(left + f.first_s * scale, y + 2, (f.last_s - f.first_s) * scale, 10, colour,
                          tip=f"{f.plate} {f.confidence:.2f} {f.first_s:.1f}-{f.last_s:.1f} s"))
    height = 30 + len(passes) * row_h
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 10}">{"".join(parts)}' \
           f'{_ticks(end, left, scale, height)}</svg>'


def _ticks(end: float, left: float, scale: float, height: int) -> str:
    return "".join(
        f'<text x="{left + s * scale:.0f}" y="{height - 2}" font-size="10">{s}s</text>'
        for s in range(0, int(end) + 1, max(1, int(end) // 10))
    )


def timeline_svg(result: Score, width: int = 1000, row_h: int = 16, *, end_s: float | None = None) -> str:
    """One row per truth pass (grey bar, the read that matched it below) and per unmatched read; the axis runs to
    ``end_s`` (the recording's end) or the last pass."""
    outcomes = sorted(result.outcomes, key=_start)
    end = max([1.0, end_s or 0.0] + [x for o in outcomes for x in (o.truth.last_s if o.truth else 0.0,
                                                                  o.found.last_s if o.found else 0.0)])
    left, scale = 110, (width - 140) / end  # room on the right for the last tick
    parts = []
    for row, o in enumerate(outcomes):
        y = 20 + row * row_h
        label = o.truth.plate if o.truth else (o.found.plate if o.found else "")
        parts.append(f'<text x="2" y="{y + 10}" font-size="11">{_esc(label)}</text>')
        if o.truth is not None and o.kind != "duplicate":  # a duplicate's truth bar is already drawn
            colour = COLOURS["missed"] if o.kind == "missed" else "#9e9e9e"
            parts.append(_bar(left + o.truth.first_s * scale, y, (o.truth.last_s - o.truth.first_s) * scale, 6, colour))
        if o.found is not None:
            parts.append(_bar(left + o.found.first_s * scale, y + 7, (o.found.last_s - o.found.first_s) * scale, 6,
                              COLOURS[o.kind], tip=f"{o.kind}: {o.found.plate}"))
    height = 30 + len(outcomes) * row_h
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 10}">'
            f'{"".join(parts)}{_ticks(end, left, scale, height)}</svg>')


def _bar(x: float, y: float, w: float, h: float, colour: str, *, tip: str = "") -> str:
    title = f"<title>{_esc(tip)}</title>" if tip else ""
    return f'<rect x="{x:.1f}" y="{y}" width="{max(2.0, w):.1f}" height="{h}" fill="{colour}">{title}</rect>'


def _span(o: Outcome) -> str:
    p = o.truth or o.found
    return f"{p.first_s:.1f}-{p.last_s:.1f}" if p is not None else "-"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text)[:20]


def _esc(text: str) -> str:
    return html.escape(text)


class TimedSource:
    """Wraps a frame source: notes when each frame arrived (for latency) and counts frames it skipped.

    Skipped frames are gaps in ``Frame.index``: what a realtime replay drops when the node falls behind.
    """

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.arrived = 0.0  # time.monotonic() when the latest frame arrived
        self.skipped = 0
        self.first: datetime | None = None
        self.last: datetime | None = None  # the latest frame's time
        self._last_index = -1

    @property
    def start(self) -> datetime | None:
        """The recording's start (the source's own, or the first frame's time)."""
        own = getattr(self.source, "start", None)
        return own if isinstance(own, datetime) else self.first

    def frames(self) -> Iterator[Frame]:
        for frame in self.source.frames():
            self.arrived = time.monotonic()
            if self.first is None:
                self.first = frame.timestamp
            self.last = frame.timestamp
            self.skipped += max(0, frame.index - self._last_index - 1)
            self._last_index = frame.index
            yield frame


class PassRecorder:
    """A pipeline ``on_pass`` observer: keeps every final pass, timed from the recording's start, and the
    latency from the arrival of the frame that completed it to its message being in the outbox."""

    def __init__(
        self,
        source: TimedSource | None,
        then: Callable[[VehiclePass, OutgoingMessage | None], None] | None = None,
        *,
        keep_crops: bool = True,
    ) -> None:
        self.source = source
        self.then = then
        self.keep_crops = keep_crops  # the report shows them; a long run without one keeps no images
        self.found: list[FoundPass] = []
        self.previews = 0
        self.latency_ms: list[float] = []

    def __call__(self, p: VehiclePass, message: OutgoingMessage | None) -> None:
        if p.preview:
            self.previews += 1
        else:
            if self.source is not None and self.source.arrived:
                self.latency_ms.append((time.monotonic() - self.source.arrived) * 1000.0)
            start = self.source.start if self.source is not None else None
            start = start or p.first_seen
            self.found.append(FoundPass(
                plate=p.plate,
                first_s=round((p.first_seen - start).total_seconds(), 3),
                last_s=round((p.last_seen - start).total_seconds(), 3),
                direction=p.direction,
                confidence=p.confidence,
                track_id=p.track_id,
                crop=p.best.crop if self.keep_crops else None,
                format_name=p.format_name,
                unconstrained=p.unconstrained,
                sightings=p.sightings,
                message_id=message.message_id if message is not None else None,
            ))
        if self.then is not None:
            self.then(p, message)

    @property
    def passes(self) -> int:
        """Final passes recorded so far."""
        return len(self.found)

    @property
    def latency_p95_ms(self) -> float | None:
        return round(float(np.percentile(self.latency_ms, 95)), 1) if self.latency_ms else None


def video_frame_at(path: str | Path) -> Callable[[float], Image | None]:
    """A function that returns the frame of video ``path`` at a time in seconds (None past its end)."""

    def frame_at(seconds: float) -> Image | None:
        cap = cv2.VideoCapture(str(path))
        try:
            cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, seconds) * 1000.0)
            ok, image = cap.read()
            return np.asarray(image, dtype=np.uint8) if ok and image is not None else None
        finally:
            cap.release()

    return frame_at
