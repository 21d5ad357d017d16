"""Replay scoring: matching passes to truth, the report, and whole replays of generated scenes with known truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from scene_reader import SceneTemplateReader

from edge.capture.video import VideoFileSource
from edge.cli import main
from edge.config.model import NodeConfig, OutboxConfig, PrivacyConfig, ReadConfig, TrackConfig
from edge.detect.contour import ContourPlateDetector
from edge.errors import ConfigError
from edge.evaluate.replay import (
    GLOSSARY,
    FoundPass,
    PassRecorder,
    TimedSource,
    TruthPass,
    load_truth,
    score,
    write_report,
)
from edge.outbox.store import Outbox
from edge.pipeline import Pipeline
from edge.privacy.stage import PrivacyStage
from edge.read.formats import FormatSet
from edge.sample.scene import scenario, write_scene
from edge.track import PlateTracker

ROOT = Path(__file__).resolve().parents[2]
OCR_MODEL = ROOT / "models" / "ppocr_rec_plate.tflite"  # what replay reads with by default


class _SceneClock:
    """The outbox's clock, set to the scene's day (so its age limit keeps the reads)."""

    def now(self) -> datetime:
        return datetime(2026, 3, 14, 8, 0, 30, tzinfo=UTC)


# -- scoring -------------------------------------------------------------------------------------

def test_score_counts_exact_misread_missed_duplicate_and_false_passes() -> None:
    truth = [TruthPass("AB12CDE", 1.0, 3.0, "approaching"), TruthPass("XY63KLM", 2.0, 4.0, "receding"),
             TruthPass("LL26NOO", 6.0, 8.0)]
    found = [
        FoundPass("AB12CDE", 1.1, 2.9, "approaching"),
        FoundPass("AB12CDF", 2.5, 3.5),  # the same vehicle again, misread: a duplicate (the exact one matched)
        FoundPass("XY63KLN", 2.2, 4.1, "approaching"),  # misread, wrong direction
        FoundPass("QQ99QQQ", 10.0, 11.0),  # nothing was there
    ]
    result = score(truth, found)
    assert result.as_dict() == {
        "passes_true": 3, "passes_found": 4, "matched": 2, "exact": 1, "misread": 1, "missed": 1,
        "duplicates": 1, "false_passes": 1, "direction_correct": 1, "direction_scored": 2,
        "recall": round(2 / 3, 4), "exact_rate": round(1 / 3, 4),
    }


def test_the_better_text_takes_the_match_and_the_other_is_the_duplicate() -> None:
    truth = [TruthPass("AB12CDE", 1.0, 3.0)]
    result = score(truth, [FoundPass("AB12CDF", 1.0, 2.0), FoundPass("AB12CDE", 2.0, 3.0)])
    assert [(o.kind, o.found.plate if o.found else None) for o in result.outcomes] == [
        ("exact", "AB12CDE"), ("duplicate", "AB12CDF")]


def test_a_read_far_off_in_time_or_text_does_not_match() -> None:
    truth = [TruthPass("AB12CDE", 1.0, 3.0)]
    result = score(truth, [FoundPass("AB12CDE", 6.0, 7.0), FoundPass("ZZ99XYW", 1.0, 3.0)])
    assert (result.count("missed"), result.count("false_pass")) == (1, 2)


def test_truth_csv_errors_name_the_row_and_value(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("plate,first_seen_s,last_seen_s,direction\nAB12 CDE,1.0,2.0,approaching\nXY63KLM,3,x,\n")
    with pytest.raises(ConfigError, match=r"t.csv:3: .*'x'"):
        load_truth(path)
    path.write_text("plate,first_seen_s,last_seen_s,direction\nab12 cde,1.0,2.0,sideways\n")
    with pytest.raises(ConfigError, match="'sideways' is not one of"):
        load_truth(path)
    path.write_text("plate,first_seen_s,last_seen_s\nab12-cde,1.0,2.5\n")
    assert load_truth(path) == [TruthPass("AB12CDE", 1.0, 2.5, None)]


def test_report_has_a_timeline_and_the_crop_of_every_error(tmp_path: Path) -> None:
    crop = np.full((20, 90, 3), 220, np.uint8)
    result = score([TruthPass("AB12CDE", 1.0, 3.0), TruthPass("XY63KLM", 5.0, 6.0)],
                   [FoundPass("AB12CDF", 1.0, 3.0, crop=crop), FoundPass("QQ99QQQ", 8.0, 9.0, crop=crop)])
    found = [o.found for o in result.outcomes if o.found is not None]
    index = write_report(tmp_path / "r", result.as_dict(), title="test", found=found, result=result)
    page = index.read_text(encoding="utf-8")
    assert "<svg" in page
    errors, passes = page.split("<h2>Passes")
    assert errors.count("<img") == 2  # the misread and the false pass; the missed one has no read
    assert passes.count("<img") == 2  # and every pass with its crop
    assert "misread" in passes and "false_pass" in passes  # each pass with its outcome
    scored = {k for k, v in result.as_dict().items() if isinstance(v, int)}
    assert scored <= GLOSSARY.keys(), f"the report explains every score: {sorted(scored - GLOSSARY.keys())}"


def test_report_without_truth_shows_every_pass_and_what_the_counts_mean(tmp_path: Path) -> None:
    crop = np.full((20, 90, 3), 220, np.uint8)
    found = [FoundPass("AB12CDE", 1.0, 3.0, "approaching", 0.97, crop=crop, format_name="uk_current", sightings=12,
                       message_id="replay.cam.0.0000abcd"),
             FoundPass("XY63KLM", 5.0, 6.0, None, 0.71, crop=crop, sightings=3)]
    summary = {"passes": 2, "weak_tracks": 1, "repeats_suppressed": 0, "published": 0}
    page = write_report(tmp_path / "r", summary, title="no truth", found=found).read_text(encoding="utf-8")
    assert "<svg" in page and page.count("<rect") == 2  # a timeline bar per pass
    assert page.count("<img") == 2
    for text in ("AB12CDE", "0.97", "uk_current", "approaching", "replay.cam.0.0000abcd", "not sent (policy)",
                 "XY63KLM", "--truth CSV"):
        assert text in page
    assert "never read well enough" in page  # weak_tracks explained
    assert "already been published" in page  # repeats_suppressed explained
    assert "Errors" not in page and "outcome" not in page


# -- whole replays on generated scenes -------------------------------------------------------------

@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("scenes")
    return {name: write_scene(scenario(name), out / f"{name}.mp4")[0] for name in ("overtake", "stop")}


def _replay_with_template_reader(video: Path, state: Path) -> tuple[list[FoundPass], list[bytes]]:
    spec = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    source = TimedSource(VideoFileSource(video, lores_size=(640, 360)))
    recorder = PassRecorder(source)
    with Outbox(state / "outbox.sqlite", OutboxConfig(), _SceneClock()) as outbox:
        Pipeline(
            source=source,
            detector=ContourPlateDetector(),
            reader=SceneTemplateReader([v["plate"] for v in spec["vehicles"]], misread_one_in=4),
            formats=FormatSet.load(ReadConfig().formats),
            tracker=PlateTracker(TrackConfig()),
            privacy=PrivacyStage(PrivacyConfig(), NodeConfig(site="s", camera="c"), "anpr/s/c/reads",
                                 redactor=None, clock=_SceneClock()),
            outbox=outbox,
            on_pass=recorder,
        ).run()
        payloads = [m.payload for m in outbox.pending(100)]
    return recorder.found, payloads


@pytest.mark.parametrize("name", ["overtake", "stop"])
def test_every_vehicle_of_a_generated_scene_is_one_exact_pass(scenes: dict[str, Path], name: str,
                                                                tmp_path: Path) -> None:
    video = scenes[name]
    truth = load_truth(video.with_name(video.stem + ".truth.csv"))
    found, _ = _replay_with_template_reader(video, tmp_path)
    result = score(truth, found).as_dict()
    assert (result["matched"], result["exact"]) == (len(truth), len(truth))
    assert (result["duplicates"], result["false_passes"]) == (0, 0)
    assert result["direction_correct"] == len(truth)


def test_two_replays_of_the_same_scene_give_identical_output(scenes: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _replay_with_template_reader(scenes["overtake"], tmp_path / "a")
    second = _replay_with_template_reader(scenes["overtake"], tmp_path / "b")

    def key(found: list[FoundPass]) -> list[tuple[object, ...]]:
        return [(f.plate, f.first_s, f.last_s, f.direction, f.confidence, f.track_id) for f in found]

    assert key(first[0]) == key(second[0])
    assert first[1] == second[1]  # the messages in the outbox, byte for byte


# -- the real command with the real OCR model ---------------------------------------------------

def test_replay_command_scores_the_default_scene_against_its_truth_alike_with_one_worker_or_two(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not OCR_MODEL.is_file():
        pytest.skip(f"{OCR_MODEL} is not there yet (scripts/setup.sh converts it)")
    video, _, truth = write_scene(scenario("default"), tmp_path / "default.mp4")
    outputs = []
    for run, workers in (("a", "2"), ("b", "1")):
        code = main(["replay", str(video), "--truth", str(truth), "--json", "--state-dir", str(tmp_path / run),
                     "--report", str(tmp_path / f"report-{run}"), "--workers", workers])
        assert code == 0
        outputs.append(json.loads(capsys.readouterr().out))
    result = outputs[0]
    assert (result["passes_true"], result["passes_found"], result["matched"]) == (4, 4, 4)
    assert (result["duplicates"], result["false_passes"]) == (0, 0)
    assert result["exact"] == 4
    assert {"fps", "latency_p95_ms"} <= set(result)
    assert (tmp_path / "report-a" / "index.html").is_file()
    # same video, same config: same output, with two workers finding the frames or one
    assert (outputs[0]["workers"], outputs[1]["workers"]) == (2, 1)
    assert outputs[0]["reads"] == outputs[1]["reads"]
    assert (result["broker"], result["published"], result["published_all"]) == (None, 0, False)


def test_replay_report_needs_no_truth_and_each_source_has_its_own_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if not OCR_MODEL.is_file():
        pytest.skip(f"{OCR_MODEL} is not there yet (scripts/setup.sh converts it)")
    monkeypatch.chdir(tmp_path)
    video, _, _ = write_scene(scenario("default"), tmp_path / "a" / "scene.mp4")
    other = tmp_path / "b" / "scene.mp4"  # same name, another recording
    other.parent.mkdir()
    other.write_bytes(video.read_bytes())
    assert main(["replay", str(video), "--report", str(tmp_path / "report")]) == 0
    out, err = capsys.readouterr()
    assert out.count("node: ") == 4  # a line per pass
    assert "no broker given: outbox now holds 4" in err and "published" not in err
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert page.count("<img") == 4 and "weak_tracks" in page
    assert main(["replay", str(other), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["outbox_depth"] == 4  # not 8: the first replay's reads stay in its own state
    states = sorted(p.name for p in (tmp_path / "var" / "replay").iterdir())
    assert len(states) == 2 and all(s.startswith("scene-") for s in states)
    assert second["reads"][0]["message_id"].split(".")[2] == "0"  # its own sequence
    counts = {k for k, v in second.items() if isinstance(v, int) and not isinstance(v, bool)}
    assert counts <= GLOSSARY.keys(), f"the report explains every count: {sorted(counts - GLOSSARY.keys())}"


def test_a_realtime_replay_drops_frames_a_slow_node_cannot_take_and_counts_them(tmp_path: Path) -> None:
    import time
    from dataclasses import replace

    spec = replace(scenario("overtake"), width=320, height=180, duration_s=1.2)
    video, _, _ = write_scene(spec, tmp_path / "small.mp4")
    source = TimedSource(VideoFileSource(video, lores_size=(160, 90), realtime=True))
    frames = []
    for frame in source.frames():
        frames.append(frame)
        time.sleep(2.5 / spec.fps)  # the node takes 2.5 frame periods per frame
    total = round(spec.duration_s * spec.fps)
    assert source.skipped == frames[-1].index + 1 - len(frames)  # every frame not delivered is counted
    assert source.skipped >= total // 3  # like a live camera: the node sees the newest frames, not a backlog
    # frames keep the recording's own times, so a replay's passes do not depend on the wall clock
    assert all((f.timestamp - frames[0].timestamp).total_seconds() == pytest.approx(f.index / spec.fps)
               for f in frames)


def test_replay_command_reads_the_night_ir_scene_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not OCR_MODEL.is_file():
        pytest.skip(f"{OCR_MODEL} is not there yet (scripts/setup.sh converts it)")
    video, _, truth = write_scene(scenario("night"), tmp_path / "night.mp4")
    assert main(["replay", str(video), "--truth", str(truth), "--json", "--state-dir", str(tmp_path / "s")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["matched"], result["exact"], result["duplicates"], result["false_passes"]) == (4, 4, 0, 0)
    assert result["direction_correct"] == 4
