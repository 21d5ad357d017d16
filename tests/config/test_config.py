"""Config is validated once, and every refusal names the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config, parse_config
from edge.errors import ConfigError
from edge.privacy.faces import RedactorSettings

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"node": {"site": "a40", "camera": "cam1"}}


def test_shipped_example_and_demo_configs_are_valid() -> None:
    for name in ("example.yaml", "demo.yaml"):
        config = load_config(ROOT / "config" / name)
        assert config.node.site


def test_shipped_configs_redact_with_centerface_and_check_with_blazeface_at_the_installed_paths() -> None:
    # the redactor's threshold (0.15) is CenterFace's: BlazeFace as the redactor would paint over half a scene
    example, demo = (load_config(ROOT / "config" / name) for name in ("example.yaml", "demo.yaml"))
    for config in (example, demo):
        assert Path(config.privacy.face_model).name == "centerface.tflite"
        assert Path(config.privacy.face_check_model).name == "face_detection_full_range.tflite"
    installed = Path(example.read.model).parent  # /opt/edge-anpr/models: where install-node.sh puts them
    assert Path(example.privacy.face_model).parent == installed == Path(example.privacy.face_check_model).parent


def test_minimal_config_gets_private_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.privacy.image == "none"
    assert config.mqtt is None
    assert set(config.privacy.fields) >= {"time", "seq", "site", "camera"}


def test_unknown_key_is_named_with_the_allowed_keys() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**MINIMAL, "capture": {"sorce": "video"}})
    assert "capture.sorce: unknown key" in str(err.value)
    assert "source" in str(err.value)


def test_wrong_type_names_key_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**MINIMAL, "read": {"threads": "many"}})
    assert "read.threads = 'many'" in str(err.value)


def test_impossible_value_names_the_limit() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**MINIMAL, "mqtt": {"port": 70000, "insecure_lab_mode": True}})
    assert "mqtt.port = 70000" in str(err.value)
    assert "65535" in str(err.value)


def test_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**MINIMAL, "privacy": {"image": "full_frame"}})
    assert "privacy.image = 'full_frame'" in str(err.value)
    assert "'redacted_overview'" in str(err.value)


def test_plain_tcp_needs_explicit_lab_mode() -> None:
    with pytest.raises(ConfigError, match=r"mqtt.tls is required"):
        parse_config({**MINIMAL, "mqtt": {"host": "broker"}})


def test_allow_list_cannot_drop_the_minimum_of_a_read() -> None:
    with pytest.raises(ConfigError, match=r"must include \['seq'\]"):
        parse_config({**MINIMAL, "privacy": {"fields": ["plate", "time", "site", "camera"]}})


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.08])
def test_a_face_night_threshold_outside_0_to_1_is_refused_naming_it(value: float) -> None:
    with pytest.raises(ConfigError, match=rf"privacy.face_night_threshold = {value}: .*between 0 and 1"):
        parse_config({**MINIMAL, "privacy": {"face_night_threshold": value}})


def test_face_night_threshold_defaults_to_the_redactors_below_the_day_threshold() -> None:
    privacy = parse_config(MINIMAL).privacy
    assert privacy.face_night_threshold == RedactorSettings().night_threshold < privacy.face_threshold
    assert parse_config({**MINIMAL, "privacy": {"face_night_threshold": 0.1}}).privacy.face_night_threshold == 0.1


def test_replay_source_needs_a_path() -> None:
    with pytest.raises(ConfigError, match=r"capture.path is required"):
        parse_config({**MINIMAL, "capture": {"source": "video"}})


@pytest.mark.parametrize("when", ["9999-12-31T23:59:55Z", "2100-01-01T00:00:00Z", "1999-12-31T23:59:59Z"])
def test_a_start_time_outside_the_years_2000_to_2099_is_refused_naming_it(when: str) -> None:
    with pytest.raises(ConfigError) as err:  # 9999-12-31 passed, then the run overflowed: internal error, exit 1
        parse_config({**MINIMAL, "capture": {"source": "video", "path": "v.mp4", "start_time": when}})
    assert f"capture.start_time = '{when}'" in str(err.value)
    assert "outside the years 2000 to 2099" in str(err.value)
    last = parse_config({**MINIMAL, "capture": {"source": "video", "path": "v.mp4",
                                                 "start_time": "2099-12-31T23:59:59Z"}})
    assert last.capture.start_time is not None


def test_check_config_and_replay_exit_2_for_a_far_future_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    far = tmp_path / "far.yaml"
    far.write_text(f"node: {{site: a40, camera: cam1, state_dir: {tmp_path / 'state'}}}\n"
                   f"capture: {{source: video, path: {video}, start_time: '9999-12-31T23:59:55Z'}}\n", encoding="utf-8")
    assert main(["check-config", "--schema-only", str(far)]) == 2
    assert "9999-12-31T23:59:55Z" in capsys.readouterr().err
    assert main(["replay", str(video), "--start", "9999-12-31T23:59:55Z", "--state-dir", str(tmp_path / "s")]) == 2
    assert "9999-12-31T23:59:55Z" in capsys.readouterr().err


def test_check_config_exits_2_with_a_precise_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("node:\n  site: a40\n  camera: cam1\ncapture:\n  fps: -3\n", encoding="utf-8")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "capture.fps = -3" in err
    assert "greater than 0" in err


def test_check_config_of_a_good_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--schema-only", str(ROOT / "config" / "example.yaml")]) == 0
    assert "OK" in capsys.readouterr().out


def test_broken_yaml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("node: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")
