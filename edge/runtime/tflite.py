"""A loaded ``.tflite`` model: one call in, one array out (or several)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import ModelError
from edge.runtime.manifest import Manifest, ModelEntry, verify

log = logging.getLogger(__name__)

# The runtime's C++ side prints this on stderr for every interpreter; it says nothing a user can act on.
NOISE = (b"Created TensorFlow Lite XNNPACK delegate",)
_STDERR_SWAP = threading.Lock()  # one swap of file descriptor 2 at a time


@contextlib.contextmanager
def quiet_runtime_stderr() -> Iterator[None]:
    """Hold back the runtime's native stderr lines that are noise (unless logging is verbose).

    The runtime writes straight to file descriptor 2, below Python's logging, so fd 2 is pointed at a
    temporary file for the duration and every other line written meanwhile is passed on afterwards.
    """
    if log.isEnabledFor(logging.INFO):
        yield
        return
    with _STDERR_SWAP, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True) if not any(n in line for n in NOISE)]
            if kept:
                os.write(2, b"".join(kept))


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(
                "no TFLite runtime: install 'ai-edge-litert' (or 'tflite-runtime' on 32-bit systems)"
            ) from exc
        log.info("using tflite-runtime (ai-edge-litert not installed)")
        return Interpreter
    return Interpreter


class TfliteModel:
    """A verified model on the LiteRT interpreter. Not thread-safe: one per worker."""

    def __init__(self, path: str | Path, entry: ModelEntry, *, threads: int = 1, content: bytes | None = None,
                 first_input: tuple[int, ...] | None = None) -> None:
        """``content``: the model's bytes, already read (several interpreters then share one copy). ``first_input``:
        the shape a model with a dynamic input is first prepared for (default: the manifest's input size); a
        detector that resizes its input before each run passes a small one, so that the working memory of the
        manifest's size is never taken (the allocator keeps part of it after a resize)."""
        self.entry = entry
        self.path = Path(path)
        try:
            if content is None:
                self._interp = _interpreter_class()(model_path=str(path), num_threads=threads)
            else:
                self._interp = _interpreter_class()(model_content=content, num_threads=threads)
            self._fix_dynamic_input(first_input)
            with quiet_runtime_stderr():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load model {str(path)!r} ({entry.name}): {exc}") from exc
        self._inputs = self._interp.get_input_details()
        self._outputs = self._interp.get_output_details()

    def _fix_dynamic_input(self, first_input: tuple[int, ...] | None) -> None:
        """Give a model with a dynamic input (-1 in its signature) the manifest's input size before the first
        allocation: its placeholder shape (1x1x1x3) cannot be prepared by the plain kernels, which is what
        runs where the XNNPACK delegate is not applied (tflite-runtime, a CPU it does not know)."""
        detail = self._interp.get_input_details()[0]
        signature = [int(v) for v in detail.get("shape_signature", detail["shape"])]
        shape = self.entry.input_size if first_input is None else first_input
        if any(v < 0 for v in signature) and len(shape) == len(signature):
            self._interp.resize_tensor_input(detail["index"], list(shape))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self._inputs[0]["shape"])

    @property
    def input_dtype(self) -> Any:
        return self._inputs[0]["dtype"]

    def resize_input(self, shape: tuple[int, ...]) -> None:
        """Resize a model with a dynamic input (for example a fully convolutional detector)."""
        if tuple(self.input_shape) != tuple(shape):
            self._interp.resize_tensor_input(self._inputs[0]["index"], list(shape))
            with quiet_runtime_stderr():
                self._interp.allocate_tensors()
            self._inputs = self._interp.get_input_details()
            self._outputs = self._interp.get_output_details()

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        """Run one inference; returns every output in the model's order."""
        self._interp.set_tensor(self._inputs[0]["index"], tensor.astype(self.input_dtype, copy=False))
        self._interp.invoke()
        return [self._interp.get_tensor(o["index"]) for o in self._outputs]


def open_model(path: str | Path, manifest: Manifest, *, threads: int = 1, content: bytes | None = None,
               first_input: tuple[int, ...] | None = None) -> TfliteModel:
    """Verify ``path`` (or ``content``, its bytes from :func:`edge.runtime.manifest.read_verified`) against the
    manifest, then load it (``first_input``: see :class:`TfliteModel`)."""
    entry = verify(path, manifest, content)
    return TfliteModel(path, entry, threads=threads, content=content, first_input=first_input)
