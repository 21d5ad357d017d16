"""The replay's lab config: what ``replay``, ``aim SOURCE`` and ``bench pipeline`` run a recording with.

A given config file, or defaults that find the project's models from any folder, with the recording as the
source, each source's own state directory, and an optional plain-TCP lab broker.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from edge.config.loader import load_config, parse_config
from edge.config.model import Config
from edge.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def replay_state_dir(source: str) -> str:
    """The default state (outbox, sequence, audit) of a replay: one folder per source under ./var/replay, so a
    replay never sends another recording's reads and its ids never repeat another's."""
    stem = re.sub(r"[^a-z0-9_-]+", "-", Path(source.rstrip("/")).name.lower()).strip("-")[:40] or "source"
    where = source if "://" in source else str(Path(source).resolve())
    return f"var/replay/{stem}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def lab_config(
    source: str, *, config_file: str | None = None, start: str | None = None, fps: float | None = None,
    realtime: bool = False, state_dir: str | None = None, broker: str | None = None, overview: str | None = None,
    overview_offset: float | None = None, workers: int | None = None,
) -> Config:
    """``config_file`` (or the lab defaults) with ``source`` as the capture, and ``broker`` (HOST:PORT) as a
    plain-TCP lab broker. ``overview``: the overview camera's recording (``overview_offset`` seconds after the
    plate recording's start); without it, a config's overview camera is left out (it is a camera, not this
    recording's). ``workers``: threads that detect and read (``detect.workers``; a replay gives the same reads with
    the same number)."""
    kind = "stream" if "://" in source else ("images" if Path(source).is_dir() else "video")
    if config_file:
        data: dict[str, Any] = load_config(config_file).model_dump(mode="json", exclude_none=True)
    else:
        stem = re.sub(r"[^a-z0-9_-]+", "-", Path(source).stem.lower()).strip("-") or "replay"
        data = {
            "node": {"site": "replay", "camera": stem[:60], "state_dir": replay_state_dir(source)},
            "read": {"model": str(PROJECT_ROOT / "models/ppocr_rec_plate.tflite"),
                     "manifest": str(PROJECT_ROOT / "models/manifest.json")},
            "detect": {"model": str(PROJECT_ROOT / "models/wpod_net.tflite"),
                       "manifest": str(PROJECT_ROOT / "models/manifest.json")},
            "privacy": {"face_model": str(PROJECT_ROOT / "models/centerface.tflite"),
                        "face_check_model": str(PROJECT_ROOT / "models/face_detection_full_range.tflite")},
        }
    data["capture"] = {**data.get("capture", {}), "source": kind, "path": source}
    camera = data["capture"].pop("overview", None)
    if overview:
        kept = {k: v for k, v in (camera or {}).items() if k in ("tolerance_s", "buffer_frames", "offset_s")}
        data["capture"]["overview"] = {**kept, "source": "stream" if "://" in overview else "video", "path": overview}
        if overview_offset is not None:
            data["capture"]["overview"]["offset_s"] = overview_offset
    if start:
        data["capture"]["start_time"] = start
    if fps:
        data["capture"]["fps"] = fps
    if realtime:
        data["capture"]["realtime"] = True
    if workers is not None:
        data["detect"] = {**data.get("detect", {}), "workers": workers}
    if state_dir:
        data["node"]["state_dir"] = state_dir
    if broker:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--broker {broker!r}: expected HOST:PORT, for example 127.0.0.1:1883")
        data["mqtt"] = {**data.get("mqtt", {}), "host": host, "port": int(port), "insecure_lab_mode": True}
        data["mqtt"].pop("tls", None)
    return parse_config(data, origin=config_file or "replay defaults")
