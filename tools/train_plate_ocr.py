"""Train the plate OCR (fully convolutional CTC) on synthetic UK plates; export models/plate_ocr.tflite.

Run from the project root with the training venv, on one core:

    taskset -c 1 nice -n 10 .venv-train/bin/python tools/train_plate_ocr.py

Crops are rendered with edge.sample.plates, then heavily augmented (perspective, rotation,
loose detector box, blur, noise, JPEG, contrast, shadows, grey "night IR") and preprocessed
with the reader's own ``edge.read.ocr.preprocess``, so training and inference see the same input.
A held-out validation set comes from a different seed; its exact-text accuracy is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.read.charsets import ALPHABET  # noqa: E402
from edge.read.ocr import BLANK, ctc_greedy, preprocess  # noqa: E402
from edge.sample.plates import random_registration, render_plate  # noqa: E402

HEIGHT, WIDTH = 32, 128
MAX_LABEL = 10


# ----------------------------------------------------------------------------- synthetic data
def random_text(rng: np.random.Generator) -> str:
    if rng.random() < 0.65:
        on = dt.date(2002, 1, 1) + dt.timedelta(days=int(rng.integers(0, 9100)))
        return random_registration(rng, on=on)
    n = int(rng.integers(2, 9))
    s = "".join(ALPHABET[int(i)] for i in rng.integers(0, len(ALPHABET), n))
    if n >= 3 and rng.random() < 0.7:
        cut = int(rng.integers(1, n))
        s = s[:cut] + " " + s[cut:]
    return s


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Car-body-like surround: smooth colour field, noise, a few bumper or grille lines."""
    field = rng.uniform(0, 255, (3, 3, 3)).astype(np.float32)
    img = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, rng.uniform(2, 25), ((h + 1) // 2, (w + 1) // 2)).astype(np.float32)
    img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST)[..., None]
    for _ in range(int(rng.integers(0, 4))):
        y = int(rng.integers(0, h))
        cv2.line(img, (0, y), (w, y + int(rng.integers(-h // 4, h // 4 + 1))), rng.uniform(0, 255, 3).tolist(),
                 int(rng.integers(1, 6)))
    return np.clip(img, 0, 255).astype(np.uint8)


def warp_plate(rng: np.random.Generator, plate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put the plate on a background with rotation/perspective; returns the image and the plate corners."""
    ph, pw = plate.shape[:2]
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    angle = math.radians(float(np.clip(rng.normal(0, 7), -16, 16)))
    yaw = rng.uniform(0.0, 0.25) * rng.choice([-1.0, 1.0])  # one side shorter (horizontal perspective)
    pitch = rng.uniform(0.0, 0.15) * rng.choice([-1.0, 1.0])  # top or bottom narrower
    shear = rng.normal(0, 0.08)
    pts = src - np.float32([pw / 2, ph / 2])
    pts[:, 0] += shear * pts[:, 1]
    pts[:, 1] *= 1.0 - yaw * np.sign(pts[:, 0]) * 0.5
    pts[:, 0] *= 1.0 - pitch * np.sign(pts[:, 1]) * 0.5
    c, s = math.cos(angle), math.sin(angle)
    pts = pts @ np.float32([[c, s], [-s, c]])
    pts += rng.normal(0, 0.02 * ph, pts.shape).astype(np.float32)
    margin = int(0.4 * ph + 0.15 * pw) + 4
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    w, h = int(x1 - x0) + 2 * margin, int(y1 - y0) + 2 * margin
    dst = (pts - np.float32([x0, y0]) + margin).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    out = background(rng, h, w)
    cv2.warpPerspective(plate, m, (w, h), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    return out, dst


def loose_crop(rng: np.random.Generator, img: np.ndarray, corners: np.ndarray) -> np.ndarray | None:
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    bw, bh = x1 - x0, y1 - y0
    left, right = rng.uniform(-0.03, 0.12, 2) * bw
    top, bottom = rng.uniform(-0.05, 0.3, 2) * bh
    cx0, cx1 = int(max(0, x0 - left)), int(min(img.shape[1], x1 + right))
    cy0, cy1 = int(max(0, y0 - top)), int(min(img.shape[0], y1 + bottom))
    if cx1 - cx0 < 8 or cy1 - cy0 < 4:
        return None
    return img[cy0:cy1, cx0:cx1]


def photometric(rng: np.random.Generator, crop: np.ndarray, plate_w: int) -> np.ndarray:
    img = crop.astype(np.float32)
    h, w = img.shape[:2]
    if rng.random() < 0.3:  # shadow across the plate
        a = rng.uniform(0, 2 * math.pi)
        gx = (np.arange(w, dtype=np.float32) - rng.uniform(0, w)) * math.cos(a)
        gy = (np.arange(h, dtype=np.float32) - rng.uniform(0, h)) * math.sin(a)
        side = (gx[None, :] + gy[:, None]) > 0
        img[side] *= rng.uniform(0.35, 0.8)
    if rng.random() < 0.15:  # night infra-red: grey, bright plate, dark surround
        grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
        grey = 255.0 * (grey / 255.0) ** rng.uniform(0.5, 1.5)
        img = np.repeat(grey[..., None], 3, axis=2)
    img = img * rng.uniform(0.35, 1.3) + rng.uniform(-70, 60)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 2.0))
    if rng.random() < 0.25:
        k = int(rng.integers(3, 10))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    # resolution: the plate between 55 and 260 px wide in the camera image
    target = rng.uniform(55, 260)
    scale = min(1.0, target / max(plate_w, 1))
    if scale < 1.0:
        img = cv2.resize(img, (max(4, round(w * scale)), max(4, round(h * scale))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.7:
        noise = rng.normal(0, rng.uniform(1, 14), img.shape)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 95))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def make_crop(rng: np.random.Generator) -> tuple[np.ndarray, str, bool]:
    """One augmented plate crop (BGR), its label (no spaces) and whether it is a two-line plate."""
    while True:
        text = random_text(rng)
        two_line = rng.random() < 0.15 and len(text.replace(" ", "")) >= 3
        ch = int(rng.integers(22, 56))
        plate = render_plate(text, rear=bool(rng.random() < 0.5), char_height=ch, two_line=two_line, rng=rng)
        img, corners = warp_plate(rng, plate)
        crop = loose_crop(rng, img, corners)
        if crop is not None:
            return photometric(rng, crop, plate.shape[1]), text.replace(" ", ""), two_line


def make_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    xs = np.empty((n, HEIGHT, WIDTH, 1), np.float32)
    labels = np.zeros((n, MAX_LABEL), np.int32)
    lengths = np.empty((n,), np.int32)
    texts = []
    for i in range(n):
        crop, text, two_line = make_crop(rng)
        xs[i, :, :, 0] = preprocess(crop, HEIGHT, WIDTH, two_line=two_line)
        labels[i, : len(text)] = [ALPHABET.index(c) for c in text]
        lengths[i] = len(text)
        texts.append(text)
    return xs, labels, lengths, texts


# ----------------------------------------------------------------------------- model
def build_model(tf):  # type: ignore[no-untyped-def]
    layers = tf.keras.layers

    def block(x, filters, pool):  # type: ignore[no-untyped-def]
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D(pool)(x)
        return x

    inp = tf.keras.Input((HEIGHT, WIDTH, 1))
    x = block(inp, 32, (2, 2))  # 16 x 64
    x = block(x, 64, (2, 2))  # 8 x 32
    x = block(x, 96, None)
    x = block(x, 96, (2, 1))  # 4 x 32
    x = block(x, 128, None)
    x = block(x, 128, (2, 1))  # 2 x 32
    x = layers.Conv2D(160, (2, 1), padding="valid", use_bias=False)(x)  # 1 x 32: collapse height
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((WIDTH // 4, 160))(x)
    x = layers.Conv1D(160, 3, padding="same", activation="relu")(x)  # context along the plate
    x = layers.Dropout(0.1)(x)
    logits = layers.Conv1D(len(ALPHABET) + 1, 1)(x)
    return tf.keras.Model(inp, logits)


def evaluate(model, xs: np.ndarray, texts: list[str]) -> float:  # type: ignore[no-untyped-def]
    probs = model.predict(xs, batch_size=256, verbose=0)
    exp = np.exp(probs - probs.max(axis=2, keepdims=True))
    probs = exp / exp.sum(axis=2, keepdims=True)
    ok = sum(ctc_greedy(p.astype(np.float32)).text == t for p, t in zip(probs, texts, strict=True))
    return ok / len(texts)


def update_manifest(models_dir: Path, tflite: Path, version: str) -> str:
    digest = hashlib.sha256(tflite.read_bytes()).hexdigest()
    path = models_dir / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": []}
    entry = {
        "name": "plate_ocr",
        "file": tflite.name,
        "version": version,
        "task": "plate-ocr",
        "input_size": [1, HEIGHT, WIDTH, 1],
        "licence": "Apache-2.0 (trained by this project)",
        "source": "trained: tools/train_plate_ocr.py",
        "sha256": digest,
    }
    models = manifest.setdefault("models", [])
    names = [m.get("name") for m in models]
    if "plate_ocr" in names:
        models[names.index("plate_ocr")] = entry  # keep its place: other entries untouched
    else:
        models.append(entry)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return digest


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000, help="training steps (batches)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-minutes", type=float, default=18.0, help="stop training early at this wall time")
    ap.add_argument("--val", type=int, default=2000, help="held-out validation crops (different seed)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--version", default="1")
    ap.add_argument("--weights", type=Path, default=ROOT / "build" / "plate_ocr.weights.h5",
                    help="Keras weights are saved here")
    ap.add_argument("--reuse", type=int, default=3, help="train on each generated batch this many times")
    return ap.parse_args()


def train(tf, args: argparse.Namespace, val_x: np.ndarray, val_texts: list[str], start: float):  # type: ignore[no-untyped-def]
    model = build_model(tf)
    print(f"parameters: {model.count_params()}", flush=True)
    warmup = min(100, args.steps // 10)
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        args.lr / 20, max(1, args.steps - warmup), alpha=0.02, warmup_target=args.lr, warmup_steps=warmup
    )
    opt = tf.keras.optimizers.Adam(schedule)
    t_steps = WIDTH // 4

    @tf.function(reduce_retracing=True)
    def train_step(x, labels, lengths):  # type: ignore[no-untyped-def]
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.nn.ctc_loss(labels, logits, lengths, tf.fill([tf.shape(x)[0]], t_steps),
                                  logits_time_major=False, blank_index=BLANK)
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(args.seed)
    step, running, batch = 0, 0.0, None
    while step < args.steps:
        if batch is None or step % args.reuse == 0:
            xs, labels, lengths, _ = make_batch(rng, args.batch)
            batch = (tf.constant(xs), tf.constant(labels), tf.constant(lengths))
        loss = float(train_step(*batch))
        running = loss if step == 0 else 0.98 * running + 0.02 * loss
        step += 1
        elapsed = (time.monotonic() - start) / 60.0
        if step % 250 == 0:
            print(f"step {step}/{args.steps} loss {running:.3f} {elapsed:.1f} min", flush=True)
        if step % 1500 == 0:
            print(f"  validation exact {evaluate(model, val_x, val_texts):.4f}", flush=True)
        if elapsed > args.max_minutes:
            print(f"stopping at step {step}: {elapsed:.1f} min reached", flush=True)
            break
    return model


def export(tf, model, args: argparse.Namespace, val_x: np.ndarray, val_texts: list[str]) -> Path:  # type: ignore[no-untyped-def]
    """Write the .tflite (softmax outputs, batch 1), check it on validation crops, update the manifest."""
    args.weights.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(args.weights))
    inp = tf.keras.Input((HEIGHT, WIDTH, 1), batch_size=1)
    infer = tf.keras.Model(inp, tf.keras.layers.Softmax(axis=-1)(model(inp, training=False)))
    tflite_bytes = tf.lite.TFLiteConverter.from_keras_model(infer).convert()
    args.out.mkdir(parents=True, exist_ok=True)
    tflite = args.out / "plate_ocr.tflite"
    tflite.write_bytes(tflite_bytes)

    interp = tf.lite.Interpreter(model_path=str(tflite), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    agree, n_check = 0, min(200, len(val_texts))
    for i in range(n_check):
        interp.set_tensor(inp["index"], val_x[i : i + 1])
        interp.invoke()
        agree += ctc_greedy(interp.get_tensor(out["index"])[0]).text == val_texts[i]
    print(f"tflite on the first {n_check} validation crops: {agree / n_check:.4f} exact", flush=True)
    digest = update_manifest(args.out, tflite, args.version)
    print(f"wrote {tflite} ({len(tflite_bytes)} bytes, sha256 {digest})")
    return tflite


def main() -> int:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)
    start = time.monotonic()

    val_x, _, _, val_texts = make_batch(np.random.default_rng(args.seed + 1_000_003), args.val)
    print(f"validation set: {len(val_texts)} crops in {time.monotonic() - start:.1f}s", flush=True)
    model = train(tf, args, val_x, val_texts, start)
    accuracy = evaluate(model, val_x, val_texts)
    print(f"held-out synthetic validation: {accuracy:.4f} exact ({len(val_texts)} crops)", flush=True)
    export(tf, model, args, val_x, val_texts)
    print(f"done in {(time.monotonic() - start) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
