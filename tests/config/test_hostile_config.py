"""A broken or hostile config file ends in exit 2 and one line that says what is wrong: never a traceback, never
gigabytes of memory or minutes of CPU."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = "node: {site: a40, camera: cam1}\n"
BOMB = (  # the classic "billion laughs", 9 levels of 9 aliases: about 400 bytes
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
)

CASES: dict[str, tuple[bytes, str]] = {
    "binary garbage": (bytes(range(256)) * 4, "is binary (it holds NUL bytes)"),
    "UTF-16": (GOOD.encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
    "UTF-16 without a BOM": (GOOD.encode("utf-16-le"), "is UTF-16 text"),
    "Latin-1": ("node: {site: a40, camera: café}\n".encode("latin-1"), "is not UTF-8 text (line 1: byte 0xe9)"),
    "5,000-deep nesting": (("node: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested more than 32 levels deep"),
    "5,000-digit integer": ((GOOD + "outbox: {max_bytes: " + "7" * 5000 + "}\n").encode(), "a number of 5000 digits"),
    "19-digit integer": ((GOOD + "outbox: {max_bytes: 1000000000000000000}\n").encode(), "at most 18"),
    "alias bomb": (BOMB.encode(), "expands to more than 100,000 values"),
    "recursive alias": ((GOOD + "track: &t {zones: [*t]}\n").encode(), "refers to the collection it is in"),
    "too many aliases": ((GOOD + "x: &x 1\ny: [" + ",".join(["*x"] * 101) + "]\n").encode(), "more than 100 aliases"),
    "2 MB file": ((GOOD + "# padding\n" * 200_000).encode(), "is larger than 1,000,000 bytes"),
    "repeated section": ((GOOD + "capture: {fps: 10}\ncapture: {fps: 12}\n").encode(),
                         "line 3: key 'capture' appears twice in one section (first on line 2)"),
    "repeated key": (b"node: {site: a40, camera: cam1, site: b50}\n", "key 'site' appears twice"),
    "infinite number": ((GOOD + "capture: {fps: .inf}\n").encode(), "capture.fps"),
    "huge outbox age": ((GOOD + "outbox: {max_age_s: 1e17}\n").encode(), "outbox.max_age_s"),
    "a directory": (b"", "is a directory"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_config_is_refused_with_exit_2_and_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, needle = CASES[case]
    path = tmp_path / "config.yaml"
    if case == "a directory":
        path.mkdir()
    else:
        path.write_bytes(content)
    started = time.monotonic()
    assert main(["check-config", str(path)]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert needle in err, err
    assert err.startswith("edge-anpr: error: ")


def test_the_alias_bomb_is_refused_in_bounded_memory_and_time(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    limit = 1024 * 1024 * 1024  # the old loader used 2.3 GB on it

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "edge", "check-config", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, preexec_fn=cap, env=dict(os.environ), check=False)
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 30
    assert "Traceback" not in done.stderr
    assert "expands to more than" in done.stderr


def test_anchors_and_merge_keys_within_the_limits_still_work(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD + "lane: &lane {kind: lane, polygon: [[0, 0], [1, 0], [1, 1]]}\n")
    assert main(["check-config", str(path)]) == 2  # 'lane' is not a section: anchors parse, the key is refused
    path.write_text(GOOD + "track:\n  zones:\n    - &z {name: lane-1, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
                    "    - {<<: *z, name: lane-2}\n")
    assert main(["check-config", str(path)]) == 0
