"""Loading a model keeps the runtime's "Created TensorFlow Lite XNNPACK delegate" line off stderr (it is shown
with -v), and passes on every other line the runtime writes meanwhile."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.runtime import load_manifest, open_model
from edge.runtime.tflite import quiet_runtime_stderr

PROJECT = Path(__file__).resolve().parents[2]
MODEL = PROJECT / "models" / "plate_ocr.tflite"


def test_loading_a_model_prints_no_xnnpack_line(capfd: pytest.CaptureFixture[str]) -> None:
    open_model(MODEL, load_manifest(PROJECT / "models" / "manifest.json"))
    assert "XNNPACK" not in capfd.readouterr().err


def test_other_native_stderr_lines_are_passed_on(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_runtime_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nWARNING: something real\n")
    assert capfd.readouterr().err == "WARNING: something real\n"


def test_verbose_logging_shows_the_runtime_line(capfd: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("edge.runtime.tflite")
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        with quiet_runtime_stderr():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    finally:
        logger.setLevel(old)
    assert "XNNPACK" in capfd.readouterr().err


def test_a_command_that_loads_models_is_quiet_unless_verbose(tmp_path: Path) -> None:
    code = ("from edge.runtime import load_manifest, open_model; "
            f"open_model({str(MODEL)!r}, load_manifest({str(PROJECT / 'models' / 'manifest.json')!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "XNNPACK" not in done.stderr


def test_a_dynamic_input_model_loads_without_the_xnnpack_delegate(monkeypatch: pytest.MonkeyPatch) -> None:
    """WPOD-NET's input is [1, -1, -1, 3]: the plain kernels (no XNNPACK: tflite-runtime, or a CPU the delegate
    does not know, as under qemu-user) cannot prepare its 1x1x1x3 placeholder, so it is sized from the manifest."""
    from edge.runtime import tflite

    wpod = PROJECT / "models" / "wpod_net.tflite"
    if not wpod.is_file():
        pytest.skip(f"{wpod} is not there yet (scripts/setup.sh converts it)")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def without_delegates(**kwargs: object) -> object:
        return Interpreter(**kwargs, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)

    monkeypatch.setattr(tflite, "_interpreter_class", lambda: without_delegates)
    manifest = load_manifest(PROJECT / "models" / "manifest.json")
    model = open_model(wpod, manifest)
    assert model.input_shape == tuple(manifest.by_name("wpod_net").input_size)
    model.resize_input((1, 224, 320, 3))
    assert model.run(np.zeros((1, 224, 320, 3), np.float32))[0].shape[:3] == (1, 14, 20)


def test_a_dynamic_input_model_may_first_be_prepared_for_a_smaller_input() -> None:
    """The WPOD-NET detector resizes its input before every run; preparing it for one cell first keeps the working
    memory of the manifest's 640x368 from ever being taken (the allocator keeps part of it after a resize)."""
    wpod = PROJECT / "models" / "wpod_net.tflite"
    if not wpod.is_file():
        pytest.skip(f"{wpod} is not there yet (scripts/setup.sh converts it)")
    model = open_model(wpod, load_manifest(PROJECT / "models" / "manifest.json"), first_input=(1, 16, 16, 3))
    assert model.input_shape == (1, 16, 16, 3)
    assert model.run(np.zeros((1, 16, 16, 3), np.float32))[0].shape[:3] == (1, 1, 1)
