"""edge (tract) against ONNX Runtime and LiteRT: the models alone on the same prepared inputs, and
the whole pipeline against a reference Python pipeline on LiteRT. Started by ./run, which makes the
venv, builds edge and writes the classifier's TFLite form; writes RESULTS.md beside this file.

Every timing is interleaved: each round runs every runtime once, in turn, so that the load of
the machine (other builds, thermal state) falls on all of them alike. Figures are medians over
all rounds. Before timing, each runtime's outputs are checked against tract's on the same input.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--edge", required=True, help="the edge binary (release)")
    ap.add_argument("--repo", required=True)
    ap.add_argument("--work", required=True, help="a folder for frames and tensors")
    ap.add_argument("--classifier-tflite", required=True)
    ap.add_argument("--long", action="store_true", help="more rounds, runs and frames")
    ap.add_argument("--rounds", type=int, help="interleaved rounds [3, long: 7]")
    ap.add_argument("--runs", type=int, help="model runs per runtime per round [20, long: 50]")
    ap.add_argument("--frames", type=int, help="frames per pipeline per round [60, long: 300]")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    rounds = args.rounds or (7 if args.long else 3)
    runs = args.runs or (50 if args.long else 20)
    frames = args.frames or (300 if args.long else 60)
    repo, work = Path(args.repo), Path(args.work)
    threads = os.cpu_count() or 1

    models = {
        "classifier.onnx": repo / "models/classifier.onnx",
        "classifier.tflite": Path(args.classifier_tflite),
        "full": repo / "models/face_detection_full_range.tflite",
        "short": repo / "models/face_detection_short_range.tflite",
    }
    meta = json.loads(Path(args.classifier_tflite).with_suffix(".json").read_text())
    astronaut = repo / "edge/tests/data/astronaut.png"
    frame_dir = work / "frames"
    write_frames(astronaut, frame_dir)

    # The models alone run on astronaut.png (512×512, one large face, which both detectors find).
    edge = Edge(args.edge, astronaut, models)
    log("tract: preparing inputs and reference outputs")
    tract_out = edge.dump(work / "tensors")

    # The other runtimes, each model with one thread and with every core.
    sessions = {}
    for n in sorted({1, threads}):
        sessions[("ORT", n, "classifier")] = OrtModel(models["classifier.onnx"], n)
        for key in ["classifier.tflite", "full", "short"]:
            sessions[("LiteRT", n, key)] = LiteModel(models[key], n)

    log("checking outputs against tract")
    parity = []
    for (runtime, n, key), session in sessions.items():
        if n != 1:
            continue
        ref = tract_out[key]
        outputs = session.run(ref["input"])
        parity.append((key, runtime, session.name, max_abs_diff(ref["outputs"], outputs)))
    for key, runtime, name, (diff, scale) in parity:
        log(f"  {key:17} {name:50} max |diff| {diff:.2e} (values up to {scale:.3g})")

    log(f"timing the models: {rounds} rounds × {runs} runs, threads 1 and {threads}")
    samples = {}
    for r in range(rounds):
        # The order rotates each round, so no runtime always runs first.
        jobs = [("tract", edge)] + [(k, s) for k, s in sessions.items()]
        shift = r % len(jobs)
        for name, job in jobs[shift:] + jobs[:shift]:
            if name == "tract":
                for key, times in job.model_only(runs).items():
                    samples.setdefault(("tract", 1, key), []).extend(times)
            else:
                samples.setdefault(name, []).extend(job.time(tract_out[name[2]]["input"], runs))
        log(f"  round {r + 1}/{rounds} done")
    medians = {k: statistics.median(v) for k, v in samples.items()}

    log(f"end to end: {rounds} rounds × {frames} frames of 640×480")
    e2e = {}
    check = None
    pipelines = [("edge --file (tract)", lambda: edge.files(frame_dir, frames)),
                 ("edge --dir, the live loop (tract)", lambda: edge.live(frame_dir, frames))]
    refs = {}
    for n in sorted({1, threads}):
        refs[n] = Reference(models["full"], models["classifier.tflite"], meta, n)
        pipelines.append((f"Python reference (LiteRT, {n} thread{'s' if n > 1 else ''})",
                          lambda n=n: refs[n].frames(frame_dir, frames)))
    for r in range(rounds):
        shift = r % len(pipelines)
        for name, fn in pipelines[shift:] + pipelines[:shift]:
            fps, results = fn()
            e2e.setdefault(name, []).append(fps)
            if name.startswith("edge --file") and check is None:
                check = results
        log(f"  round {r + 1}/{rounds} done")
    agreement = compare_results(check, refs[1].frames(frame_dir, min(frames, 60))[1])

    log("profiling tract")
    profiles = edge.profile(runs * 2)

    write_results(Path(args.out), {
        "args": args, "repo": repo, "threads": threads, "rounds": rounds, "runs": runs,
        "frames": frames, "parity": parity, "medians": medians, "e2e": e2e,
        "agreement": agreement, "profiles": profiles,
    })
    log(f"wrote {args.out}")


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Frames: the astronaut's face moving across a grey 640×480 background, as edge/benches/live.rs
# makes them.

def write_frames(astronaut, out, count=60):
    out.mkdir(parents=True, exist_ok=True)
    if len(list(out.glob("frame*.png"))) == count:
        return
    face = Image.open(astronaut).convert("RGB").resize((300, 300), Image.BILINEAR)
    for i in range(count):
        frame = Image.new("RGB", (640, 480), (90, 90, 90))
        x = (i * 10) % 600
        x = 600 - x if x > 300 else x
        frame.paste(face, (x + 20, 90))
        frame.save(out / f"frame{i:03}.png")


# ---------------------------------------------------------------------------------------------
# tract, through the edge binary.

class Edge:
    def __init__(self, binary, image, models):
        self.binary, self.image, self.models = binary, image, models
        # Two invocations cover the four models: full range + ONNX, short range + TFLite.
        self.configs = {
            ("full", "classifier"): ["--detector", str(models["full"]),
                                     "--model", str(models["classifier.onnx"])],
            ("short", "classifier.tflite"): ["--detector", str(models["short"]),
                                             "--model", str(models["classifier.tflite"])],
        }

    def bench(self, config, *flags):
        cmd = [self.binary, "bench", "--file", str(self.image), *config, *flags]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"compare: {' '.join(cmd)} failed: {done.stderr.strip()}")
        return done.stdout

    def dump(self, folder):
        """Each model's prepared input and tract's outputs, keyed as the sessions are."""
        out = {}
        for keys, config in self.configs.items():
            d = folder / "-".join(keys)
            d.mkdir(parents=True, exist_ok=True)
            timings = json.loads(self.bench(config, "--model-only", "--runs", "1", "--json",
                                            "--dump", str(d)))
            for key, t in zip(keys, timings):
                model = t["model"]
                out[key] = {
                    "input": read_f32(d / f"{model}.input.f32", t["input_shape"]),
                    "outputs": [read_f32(d / f"{model}.output{i}.f32", s)
                                for i, s in enumerate(t["output_shapes"])],
                }
        return out

    def model_only(self, runs):
        times = {}
        for keys, config in self.configs.items():
            timings = json.loads(self.bench(config, "--model-only", "--runs", str(runs), "--json"))
            for key, t in zip(keys, timings):
                times[key] = t["samples_ms"]
        return times

    def profile(self, runs):
        config = self.configs[("full", "classifier")]
        return json.loads(self.bench(config, "--profile", "--runs", str(runs), "--json"))

    def files(self, folder, frames):
        """`edge --file` one by one: frames/s from its own per-frame timings (model loading and
        JSON printing not counted, as in the reference)."""
        paths = sorted(folder.glob("*.png"))
        paths = [paths[i % len(paths)] for i in range(frames)]
        cmd = [self.binary, "--json", *self.configs[("full", "classifier")], "--file", *map(str, paths)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"compare: edge --file failed: {done.stderr.strip()}")
        reports = [json.loads(line) for line in done.stdout.splitlines()]
        ms = sum(sum(r["timings_ms"].values()) for r in reports)
        results = [[(f["box"], f["p_fake"]) for f in r["faces"]] for r in reports]
        return len(reports) / ms * 1e3, results

    def live(self, folder, frames):
        """The real-time loop over the folder (detector on every frame, tracking, events): its
        own processed frames/s."""
        cmd = [self.binary, *self.configs[("full", "classifier")], "--dir", str(folder), "--loop",
               "--max-frames", str(frames), "--stats-every", "0"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        found = re.search(r"done: .*processed \d+ \(([\d.]+) fps\)", done.stderr)
        if done.returncode != 0 or not found:
            sys.exit(f"compare: edge --dir failed: {done.stderr.strip()}")
        return float(found.group(1)), None


def read_f32(path, shape):
    return np.fromfile(path, dtype="<f4").reshape(shape)


# ---------------------------------------------------------------------------------------------
# ONNX Runtime and LiteRT.

class OrtModel:
    def __init__(self, path, threads):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.name = f"onnxruntime {ort.__version__}, {path.name}"

    def run(self, x):
        return self.session.run(None, {self.input: x})

    def time(self, x, runs):
        self.run(x)
        out = []
        for _ in range(runs):
            t = time.perf_counter()
            self.session.run(None, {self.input: x})
            out.append((time.perf_counter() - t) * 1e3)
        return out


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


def max_abs_diff(ref, outputs):
    """Largest difference between tract's outputs and another runtime's, outputs matched by
    shape (runtimes list them in different orders), and the largest magnitude among tract's."""
    worst = scale = 0.0
    pool = list(outputs)
    for r in ref:
        match = next((o for o in pool if tuple(o.shape) == tuple(r.shape)), None)
        if match is None:
            sys.exit(f"compare: no output of shape {r.shape} among {[o.shape for o in outputs]}")
        pool.remove(match)
        worst = max(worst, float(np.max(np.abs(match.astype(np.float64) - r))))
        scale = max(scale, float(np.max(np.abs(r))))
    return worst, scale


# ---------------------------------------------------------------------------------------------
# The reference pipeline: edge's preprocessing and post-processing rewritten in Python for this
# benchmark only (letterbox, BlazeFace anchors and decoding, weighted NMS, square crop with
# margin, normalisation from the classifier's metadata), both models on LiteRT.

def rust_round(v):
    """Rust's f32::round: halves away from zero."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def anchors(size, strides, interpolated):
    """edge::anchors::AnchorSpec::anchors."""
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
        """edge::crop::face: a square around the box grown by the margin, black outside the
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
    """edge::nms::weighted_nms (boxes only)."""
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


def compare_results(edge_results, ref_results):
    """Faces found by both pipelines on the same frames: count agreement, largest box and
    p(FAKE) differences."""
    n = min(len(edge_results), len(ref_results))
    same_count = sum(len(edge_results[i]) == len(ref_results[i]) for i in range(n))
    box_diff = p_diff = 0.0
    for i in range(n):
        for (eb, ep), (rb, rp) in zip(edge_results[i], ref_results[i]):
            box_diff = max(box_diff, max(abs(a - b) for a, b in zip(eb, rb)))
            p_diff = max(p_diff, abs(ep - rp))
    return {"frames": n, "same_count": same_count, "box": box_diff, "p_fake": p_diff}


# ---------------------------------------------------------------------------------------------
# RESULTS.md

def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo):
    done = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def write_results(path, v):
    threads, medians, rounds, runs, frames = v["threads"], v["medians"], v["rounds"], v["runs"], v["frames"]
    cores = f"{threads} threads" if threads > 1 else "1 thread"
    lines = [
        "# edge (tract) against ONNX Runtime and LiteRT",
        "",
        "Written by `edge/benches/compare/run`"
        + (" --long" if v["args"].long else "")
        + f" on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, edge {git_commit(v['repo'])}.",
        f"Machine: {cpu_name()}, {threads} logical cores, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__}, "
        f"ai-edge-litert {litert_version()} (its default XNNPACK CPU delegate).",
        "All figures come from one run whose runtimes were interleaved round by round "
        f"({rounds} rounds); the machine may have been busy with other work, which falls on all of "
        "them alike, so the ratios are the figures to read. tract runs single-threaded (edge is "
        "built without tract's multithread feature).",
        "",
        "## Same outputs",
        "",
        "Largest absolute difference to tract's outputs on the same input (each detector on "
        "astronaut.png letterboxed, the classifier on the face crop edge cuts from it):",
        "",
        "| model | runtime | max abs diff | largest abs value |",
        "| --- | --- | ---: | ---: |",
    ]
    for key, runtime, name, (diff, scale) in v["parity"]:
        lines.append(f"| {model_label(key)} | {name} | {diff:.1e} | {scale:.3g} |")
    lines += [
        "",
        "## The models alone",
        "",
        f"Median ms of one run on the same prepared input ({rounds} rounds × {runs} runs each). "
        "tract through `edge bench --model-only`; ORT and LiteRT from Python, timing only the "
        "runtime's own call. No ONNX form of BlazeFace exists here (MediaPipe ships TFLite only, "
        "and tract writes no ONNX), so the detectors are compared with LiteRT alone.",
        "",
        f"| model | tract (1 thread) | ORT 1 thread | ORT {cores} | LiteRT 1 thread | LiteRT {cores} "
        "| tract ÷ best at 1 thread | tract ÷ best |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [("classifier", "classifier", "classifier.tflite"),
            ("classifier.tflite", None, "classifier.tflite"),
            ("full", None, "full"), ("short", None, "short")]
    for tract_key, ort_key, lite_key in rows:
        tract = medians.get(("tract", 1, tract_key))
        cell = lambda k: medians.get(k)
        others = {
            "ort1": cell(("ORT", 1, ort_key)) if ort_key else None,
            "ortn": cell(("ORT", threads, ort_key)) if ort_key else None,
            "lite1": cell(("LiteRT", 1, lite_key)),
            "liten": cell(("LiteRT", threads, lite_key)),
        }
        best1 = min(x for x in [others["ort1"], others["lite1"]] if x is not None)
        best = min(x for x in others.values() if x is not None)
        fmt = lambda x: "—" if x is None else f"{x:.2f}"
        lines.append(
            f"| {model_label(tract_key, tract=True)} | {fmt(tract)} | {fmt(others['ort1'])} | "
            f"{fmt(others['ortn'] if threads > 1 else None)} | {fmt(others['lite1'])} | "
            f"{fmt(others['liten'] if threads > 1 else None)} | {tract / best1:.2f} | {tract / best:.2f} |"
        )
    lines += [
        "",
        "The TFLite classifier is models/classifier.onnx written as TFLite by the trainer's exporter "
        "(`cargo run -p trainer --example onnx_to_tflite`), the same weights; LiteRT runs it, and "
        "its tract row is tract on that .tflite file.",
        "",
        "## End to end",
        "",
        f"Frames/s on {frames} frames of 640×480 PNG with one face (the astronaut moving on grey, "
        f"as edge/benches/live.rs makes them), median of {rounds} rounds: decode, full-range "
        "detector, crop, classifier on every frame. `edge --file` counts its own per-frame "
        "timings; the live loop (`edge --dir --max-frames`) reports its processed frames/s, with "
        "tracking and events on top. The reference is the same pipeline in Python (Pillow "
        "decoding and bilinear resizing, NumPy, the same anchors, weighted NMS, margin 0.3 and "
        "normalisation from the classifier's metadata), both models on LiteRT.",
        "",
        "| pipeline | frames/s | ms/frame |",
        "| --- | ---: | ---: |",
    ]
    for name, values in v["e2e"].items():
        fps = statistics.median(values)
        lines.append(f"| {name} | {fps:.1f} | {1e3 / fps:.1f} |")
    a = v["agreement"]
    lines += [
        "",
        f"The two pipelines agree: the same number of faces on {a['same_count']} of {a['frames']} "
        f"frames, boxes within {a['box']:.2f} px, p(FAKE) within {a['p_fake']:.3f}. The face "
        "crops differ slightly (Pillow's resizing against the image crate's, and boxes a fraction "
        "of a pixel apart can move the square crop by a pixel), and this classifier's p(FAKE) is "
        "that sensitive; on the same crop the runtimes agree (see Same outputs).",
        "",
        "## Where tract's time goes",
        "",
        "`edge bench --profile` (tract's per-node evaluation hook, medians per node; the full-range "
        "detector on astronaut.png letterboxed and the classifier on its face crop):",
        "",
    ]
    lines += [summary(p) for p in v["profiles"]]
    for p in v["profiles"]:
        lines += ["", *profile_tables(p, top=10)]
    path.write_text("\n".join(lines) + "\n")


def model_label(key, tract=False):
    return {
        "classifier": "classifier (MobileNetV2 128, .onnx)" if tract else "classifier",
        "classifier.tflite": "classifier (same weights, .tflite)",
        "full": "BlazeFace full range (192)",
        "short": "BlazeFace short range (128)",
    }[key]


def by_op(profile):
    """(op type, nodes, ms), slowest first, as `edge bench --profile` groups them."""
    groups = {}
    for n in profile["nodes"]:
        count, ms = groups.get(n["op"], (0, 0.0))
        groups[n["op"]] = (count + 1, ms + n["ms"])
    return sorted(((op, c, ms) for op, (c, ms) in groups.items()), key=lambda g: -g[2])


def summary(profile):
    """One line: the op types that take most of the time."""
    total = sum(n["ms"] for n in profile["nodes"]) or 1.0
    parts = ", ".join(f"{op} {100 * ms / total:.0f} %" for op, _, ms in by_op(profile)[:4])
    return (f"- {profile['model']}: {profile['run_ms']:.2f} ms per run; the nodes' medians add up "
            f"to {total:.2f} ms, and {profile['outside_ms']:.2f} ms of a run (median) is spent "
            f"between nodes; in the nodes: {parts}.")


def profile_tables(profile, top):
    total = sum(n["ms"] for n in profile["nodes"]) or 1.0
    out = [f"{profile['model']}, the {top} slowest of {len(profile['nodes'])} nodes "
           f"({profile['runs']} runs):", "",
           "| node | op | output shape | ms | % |", "| --- | --- | --- | ---: | ---: |"]
    for n in profile["nodes"][:top]:
        out.append(f"| {n['name']} | {n['op']} | {n['output']} | {n['ms']:.3f} | "
                   f"{100 * n['ms'] / total:.1f} |")
    out += ["", f"{profile['model']}, by op type:", "",
            "| op type | nodes | ms | % |", "| --- | ---: | ---: | ---: |"]
    for op, count, ms in by_op(profile):
        out.append(f"| {op} | {count} | {ms:.3f} | {100 * ms / total:.1f} |")
    return out


if __name__ == "__main__":
    main()
