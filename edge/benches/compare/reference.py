"""The reference pipeline of edge/benches/compare: edge's preprocessing and post-processing
rewritten in Python for this benchmark only (letterbox, BlazeFace anchors and decoding, weighted
NMS, square crop with margin, normalisation from the classifier's metadata), both models on
LiteRT. Not shipped. It imports only what it needs (NumPy, Pillow, LiteRT), so that its start-up
and memory, measured as its own process, are the pipeline's:

    python reference.py --detector D.tflite --classifier C.tflite [--threads N] IMAGE...

prints one JSON line per image: the faces' boxes and p(FAKE).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

class LiteModel:
    def __init__(self, path, threads):
        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.input = self.it.get_input_details()[0]
        self.outputs = self.it.get_output_details()
        self.name = f"LiteRT {litert_version()}, {path.name}"

    def run(self, x):
        if tuple(x.shape) != tuple(self.input["shape"]):
            sys.exit(f"compare: {self.name} takes {self.input['shape']}, not {x.shape}")
        self.it.set_tensor(self.input["index"], x)
        self.it.invoke()
        return [self.it.get_tensor(o["index"]) for o in self.outputs]

    def time(self, x, runs):
        self.run(x)
        out = []
        for _ in range(runs):
            t = time.perf_counter()
            self.it.set_tensor(self.input["index"], x)
            self.it.invoke()
            out.append((time.perf_counter() - t) * 1e3)
        return out


def litert_version():
    from importlib.metadata import version
    return version("ai-edge-litert")


# ---------------------------------------------------------------------------------------------
# The reference pipeline: edge's preprocessing and post-processing rewritten in Python for this
# benchmark only (letterbox, BlazeFace anchors and decoding, weighted NMS, square crop with
# margin, normalisation from the classifier's metadata), both models on LiteRT.

def rust_round(v):
    """Rust's f32::round: halves away from zero."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def anchors(size, strides, interpolated):
    """edge::infer::detect::anchors::AnchorSpec::anchors."""
    per_layer = 1 + (interpolated > 0)
    out, layer = [], 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        grid = -(-size // stride)
        for y in range(grid):
            for x in range(grid):
                out.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * (same * per_layer))
        layer += same
    return np.array(out, dtype=np.float32)


class Reference:
    def __init__(self, detector, classifier, meta, threads, margin=0.3, min_score=0.5, iou=0.3):
        self.det = LiteModel(detector, threads)
        self.cls = LiteModel(classifier, threads)
        self.size = int(self.det.input["shape"][1])
        self.anchors = anchors(192, [4], 0.0) if self.size == 192 else anchors(128, [8, 16, 16, 16], 1.0)
        self.meta, self.margin, self.min_score, self.iou = meta, margin, min_score, iou
        shape = self.cls.input["shape"]
        self.nchw = shape[1] == 3
        self.crop_size = int(shape[2] if self.nchw else shape[1])
        self.mean = np.array(meta["mean"], np.float32)
        self.std = np.array(meta["std"], np.float32)

    def frames(self, folder, frames):
        paths = sorted(folder.glob("*.png"))
        results = []
        t = time.perf_counter()
        for i in range(frames):
            img = np.asarray(Image.open(paths[i % len(paths)]).convert("RGB"))
            results.append(self.analyse(img))
        return frames / (time.perf_counter() - t), results

    def analyse(self, img):
        return [(box, self.p_fake(img, box)) for box, _ in self.detect(img)]

    def detect(self, img):
        h, w = img.shape[:2]
        size = self.size
        scale = size / max(w, h)
        rw = min(max(int(rust_round(w * scale)), 1), size)
        rh = min(max(int(rust_round(h * scale)), 1), size)
        pad_x, pad_y = (size - rw) // 2, (size - rh) // 2
        sx, sy = rw / w, rh / h
        resized = np.asarray(Image.fromarray(img).resize((rw, rh), Image.BILINEAR), np.float32)
        x = np.full((1, size, size, 3), -1.0, np.float32)
        x[0, pad_y:pad_y + rh, pad_x:pad_x + rw] = resized / 127.5 - 1.0
        outputs = self.det.run(x)
        boxes = next(o for o in outputs if o.shape[-1] == 16)[0]
        logits = next(o for o in outputs if o.shape[-1] == 1)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        faces = []
        for i in np.nonzero(scores >= self.min_score)[0]:
            ax, ay = self.anchors[i] * size
            cx, cy = boxes[i, 0] + ax, boxes[i, 1] + ay
            hw, hh = boxes[i, 2] / 2, boxes[i, 3] / 2
            box = [(cx - hw - pad_x) / sx, (cy - hh - pad_y) / sy,
                   (cx + hw - pad_x) / sx, (cy + hh - pad_y) / sy]
            faces.append((box, float(scores[i])))
        return weighted_nms(faces, self.iou)

    def p_fake(self, img, box):
        crop = self.crop(img, box)
        x = (crop.astype(np.float32) / 255.0 - self.mean) / self.std
        x = x.transpose(2, 0, 1)[None] if self.nchw else x[None]
        values = self.cls.run(np.ascontiguousarray(x, np.float32))[0].reshape(-1)
        labels, kind = self.meta["labels"], self.meta["output"]
        fake = labels.index("FAKE")
        sigmoid = lambda z: 1.0 / (1.0 + math.exp(-z))
        if len(values) == 1:
            p = float(values[0]) if kind == "probability" else sigmoid(float(values[0]))
            return 1.0 - p if fake == 0 else p
        a, b = float(values[0]), float(values[1])
        return [a, b][fake] / (a + b) if kind == "probability" else sigmoid([a - b, b - a][fake])

    def crop(self, img, box):
        """edge::infer::crop::face: a square around the box grown by the margin, black outside the
        image, resized to the classifier's input."""
        x0, y0, x1, y1 = box
        side = max(rust_round(max(x1 - x0, y1 - y0) * (1 + self.margin)), 1.0)
        sx = int(rust_round((x0 + x1) / 2 - side / 2))
        sy = int(rust_round((y0 + y1) / 2 - side / 2))
        side = int(side)
        size = self.crop_size
        out = np.zeros((size, size, 3), np.uint8)
        h, w = img.shape[:2]
        cx0, cy0 = min(max(sx, 0), w), min(max(sy, 0), h)
        cx1, cy1 = min(max(sx + side, 0), w), min(max(sy + side, 0), h)
        if cx1 <= cx0 or cy1 <= cy0:
            return out
        scale = size / side
        dx0, dy0 = int(rust_round((cx0 - sx) * scale)), int(rust_round((cy0 - sy) * scale))
        dx1, dy1 = int(rust_round((cx1 - sx) * scale)), int(rust_round((cy1 - sy) * scale))
        dw, dh = max(dx1 - dx0, 1), max(dy1 - dy0, 1)
        part = img[cy0:cy1, cx0:cx1]
        if (dw, dh) != (cx1 - cx0, cy1 - cy0):
            part = np.asarray(Image.fromarray(part).resize((dw, dh), Image.BILINEAR))
        # `image::imageops::replace` clips what falls outside.
        pw, ph = min(dw, size - dx0), min(dh, size - dy0)
        out[dy0:dy0 + ph, dx0:dx0 + pw] = part[:ph, :pw]
        return out


def iou(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    area = lambda r: max(r[2] - r[0], 0.0) * max(r[3] - r[1], 0.0)
    union = area(a) + area(b) - inter
    return 0.0 if union <= 0 else inter / union


def weighted_nms(faces, threshold):
    """edge::infer::detect::nms::weighted_nms (boxes only)."""
    faces = sorted(faces, key=lambda f: -f[1])
    kept = []
    while faces:
        top = faces[0]
        cluster = [f for f in faces if iou(top[0], f[0]) > threshold]
        faces = [f for f in faces if iou(top[0], f[0]) <= threshold]
        total = sum(f[1] for f in cluster)
        box = [sum(f[0][k] * f[1] / total for f in cluster) for k in range(4)]
        kept.append((box, top[1]))
    return kept


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", required=True, help="BlazeFace .tflite")
    ap.add_argument("--classifier", required=True, help="classifier .tflite, with its <stem>.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    classifier = Path(args.classifier)
    meta = json.loads(classifier.with_suffix(".json").read_text())
    ref = Reference(Path(args.detector), classifier, meta, args.threads)
    for path in args.images:
        img = np.asarray(Image.open(path).convert("RGB"))
        faces = ref.analyse(img)
        print(json.dumps({"file": path, "faces": [{"box": [float(c) for c in b], "p_fake": p}
                                                   for b, p in faces]}),
              flush=True)


if __name__ == "__main__":
    main()
