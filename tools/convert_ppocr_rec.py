"""Convert PP-OCR's text recogniser from the pinned ``rapidocr`` wheel into the plate reader's ``.tflite``.

Maintainers' tool (never imported by ``edge``). Runs in a separate conversion venv, because onnx2tf
for Python 3.11 pins its own TensorFlow, NumPy and protobuf::

    python3 -m venv .venv-convert
    .venv-convert/bin/pip install -r tools/requirements-convert.txt
    .venv-convert/bin/python tools/convert_ppocr_rec.py            # writes out/converted/, compares with models/
    .venv-convert/bin/python tools/convert_ppocr_rec.py --update-manifest   # after changing this tool

Steps: download ``rapidocr==3.10.0`` (pip, no dependencies), take ``PP-OCRv6_rec_small.onnx`` and check
its sha256; keep only the output classes a plate needs (``edge/read/charsets.py``: the CTC blank, digits,
letters and plate separators) by slicing the last linear layer, which drops 18,642 of its 18,710
classes and most of its cost; fix the input to 1x3x48xWIDTH; replace ``Erf`` (GELU), which LiteRT has
no builtin for, by its tanh approximation; simplify with onnxsim; convert with onnx2tf (float32, NHWC
input 1x48xWIDTHx3, BGR scaled to -1..1; output 1x(WIDTH/8)x(1+classes) softmax). The result's sha256 is
compared with ``models/manifest.json`` (entry ``ppocr_rec_plate``), or written there with
``--update-manifest``. The conversion is deterministic: two runs, and a run in a fresh venv, gave the
same sha256. Cost measured on the 2-core x86 dev machine: venv + ``pip install`` 43 s (warm pip cache;
about 700 MB installed, TensorFlow most of it), download + conversion 23 s.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any

from convert_common import Target, onnx2tf_convert, parse_args, wheel_members

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, VERSION = "rapidocr", "3.10.0"
MEMBER = "rapidocr/models/PP-OCRv6_rec_small.onnx"
MEMBER_SHA256 = "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"
NAME = "ppocr_rec_plate"
OUT = "ppocr_rec_plate.tflite"
HEIGHT, WIDTH = 48, 192
ERF_C1, ERF_C3 = 1.1283792, 0.1009109  # erf(z) ~ tanh(c1 z + c3 z^3): GELU's tanh form


def plate_classes() -> str:
    spec = importlib.util.spec_from_file_location("charsets", ROOT / "edge" / "read" / "charsets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.PPOCR_PLATE_CLASSES)


def fetch_onnx(work: Path, wheel: Path | None) -> bytes:
    return wheel_members(PACKAGE, VERSION, {MEMBER: MEMBER_SHA256}, work, wheel=wheel)[0]


def plate_onnx(data: bytes, classes: str) -> Any:
    """The recogniser cut to plate classes, static input, Erf replaced; simplified."""
    import numpy as np
    import onnx
    import onnxsim
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    chars = next(p.value for p in model.metadata_props if p.key == "character").splitlines()
    labels = ["<blank>", *chars, " "]  # rapidocr: blank first, space appended last
    keep = [0] + [labels.index(c) if c != " " else len(labels) - 1 for c in classes]
    graph = model.graph
    softmax = graph.node[-1]
    if softmax.op_type != "Softmax":
        raise SystemExit(f"unexpected last op {softmax.op_type}; expected Softmax")
    inits = {i.name: i for i in graph.initializer}
    sliced = 0
    for init in inits.values():
        dims = list(init.dims)
        if dims and dims[-1] == len(labels) and len(dims) <= 2:
            arr = numpy_helper.to_array(init)[..., keep].astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
            sliced += 1
    if sliced != 2:
        raise SystemExit(f"expected to slice the last layer's weight and bias, sliced {sliced} tensors")
    inp, out = graph.input[0], graph.output[0]
    inp.type.tensor_type.shape.dim[0].dim_value = 1
    inp.type.tensor_type.shape.dim[3].dim_value = WIDTH
    out.type.tensor_type.shape.dim[0].dim_value = 1
    out.type.tensor_type.shape.dim[2].dim_value = len(keep)
    graph.initializer.extend([numpy_helper.from_array(np.array(ERF_C1, np.float32), "erf_c1"),
                              numpy_helper.from_array(np.array(ERF_C3, np.float32), "erf_c3")])
    nodes = []
    for n in graph.node:
        if n.op_type != "Erf":
            nodes.append(n)
            continue
        z, y, p = n.input[0], n.output[0], f"{n.name or n.output[0]}_tanh"
        nodes += [helper.make_node("Mul", [z, z], [p + "_z2"]),
                  helper.make_node("Mul", [p + "_z2", "erf_c3"], [p + "_a"]),
                  helper.make_node("Add", [p + "_a", "erf_c1"], [p + "_b"]),
                  helper.make_node("Mul", [p + "_b", z], [p + "_c"]),
                  helper.make_node("Tanh", [p + "_c"], [y])]
    del graph.node[:]
    graph.node.extend(nodes)
    del model.metadata_props[:]
    onnx.checker.check_model(model)
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise SystemExit("onnxsim could not check the simplified model")
    return simplified


def to_tflite(model: Any, work: Path) -> bytes:
    tf_dir = onnx2tf_convert(model, work, "rec", overwrite_input_shape=[f"x:1,3,{HEIGHT},{WIDTH}"])
    return (tf_dir / "rec_float32.tflite").read_bytes()


def manifest_entry(digest: str, classes: str) -> dict[str, Any]:
    return {
        "name": NAME,
        "file": OUT,
        "version": f"PP-OCRv6_rec_small via {PACKAGE} {VERSION}, {len(classes) + 1} plate classes, width {WIDTH}",
        "task": "plate-ocr-ppocr",
        "input_size": [1, HEIGHT, WIDTH, 3],
        "licence": "Apache-2.0 (PaddleOCR models, per rapidocr's MODEL_LICENSES.md; rapidocr code Apache-2.0)",
        "source": f"converted: tools/convert_ppocr_rec.py from pypi: {PACKAGE}=={VERSION}:{MEMBER}",
        "sha256": digest,
    }


def main() -> int:
    args = parse_args(__doc__ or "", PACKAGE, VERSION, ROOT)
    classes = plate_classes()
    target = Target(args.models_dir, NAME, OUT, args.out_dir)
    with tempfile.TemporaryDirectory(prefix="convert-ppocr-") as tmp:
        work = Path(tmp)
        tflite = to_tflite(plate_onnx(fetch_onnx(work, args.wheel), classes), work)
        written = target.install(tflite, lambda digest: manifest_entry(digest, classes),
                                 update_manifest=args.update_manifest)
        shutil.rmtree(work / "tf", ignore_errors=True)
    print(f"converted {NAME:33} {written} ({len(tflite) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
