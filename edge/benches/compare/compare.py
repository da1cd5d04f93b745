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
from PIL import Image

from reference import LiteModel, Reference, litert_version

HERE = Path(__file__).resolve().parent
# The classifier's input side, for the tables (set from the input tract was given).
CLASSIFIER_SIZE = "?"


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
    # The live loop's most threads: detection beside cropping and classification.
    edge_threads = min(threads, 2)

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
    global CLASSIFIER_SIZE
    # NCHW or NHWC, the image's side is the third dimension.
    CLASSIFIER_SIZE = tract_out["classifier"]["input"].shape[2]

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
    samples, stages = {}, {}
    for r in range(rounds):
        # The order rotates each round, so no runtime always runs first.
        jobs = [("tract", edge), ("stages", edge)] + [(k, s) for k, s in sessions.items()]
        shift = r % len(jobs)
        for name, job in jobs[shift:] + jobs[:shift]:
            if name == "tract":
                for key, times in job.model_only(runs).items():
                    samples.setdefault(("tract", 1, key), []).extend(times)
            elif name == "stages":
                for detector, report in job.stages(runs).items():
                    stages.setdefault(detector, []).append(report)
            else:
                samples.setdefault(name, []).extend(job.time(tract_out[name[2]]["input"], runs))
        log(f"  round {r + 1}/{rounds} done")
    medians = {k: statistics.median(v) for k, v in samples.items()}

    log(f"end to end: {rounds} rounds × {frames} frames of 640×480")
    e2e = {}
    check = None
    pipelines = [("edge --file (tract)", lambda: edge.files(frame_dir, frames)),
                 ("edge --dir, the live loop (tract)", lambda: edge.live(frame_dir, frames))]
    if edge_threads > 1:
        pipelines.append((f"edge --dir --threads {edge_threads}, the live loop (tract)",
                          lambda: edge.live(frame_dir, frames, edge_threads)))
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

    log(f"memory and start-up: {rounds} rounds, one photo per process")
    reference_cmd = [sys.executable, str(HERE / "reference.py"), "--detector", str(models["full"]),
                     "--classifier", str(models["classifier.tflite"]), str(astronaut)]
    processes = [("edge --file (tract)", edge.file_cmd(astronaut)),
                 ("Python reference (LiteRT)", reference_cmd)]
    startup = {}
    for r in range(rounds):
        shift = r % len(processes)
        for name, cmd in processes[shift:] + processes[:shift]:
            startup.setdefault(name, []).append(time_process(cmd, work / "time.txt"))

    log("profiling tract")
    profiles = edge.profile(runs * 2)
    log("profiling ONNX Runtime (classifier, 1 thread)")
    ort_profile = ort_layers(models["classifier.onnx"], tract_out["classifier"]["input"], runs * 2,
                             work / "ort-profile")

    write_results(Path(args.out), {
        "args": args, "repo": repo, "threads": threads, "rounds": rounds, "runs": runs,
        "frames": frames, "parity": parity, "medians": medians, "e2e": e2e,
        "agreement": agreement, "profiles": profiles, "startup": startup, "stages": stages,
        "ort_profile": ort_profile,
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

    def stages(self, runs):
        """`edge bench`: each stage's median ms on the photo, with each detector and the
        classifier (.onnx)."""
        out = {}
        for detector in ["short", "full"]:
            config = ["--detector", str(self.models[detector]),
                      "--model", str(self.models["classifier.onnx"])]
            out[detector] = json.loads(self.bench(config, "--runs", str(runs), "--json"))
        return out

    def file_cmd(self, image):
        return [self.binary, "--json", *self.configs[("full", "classifier")], "--file", str(image)]

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

    def live(self, folder, frames, threads=1):
        """The real-time loop over the folder (detector on every frame, tracking, events): its
        own processed frames/s. With 2 threads the detector runs on its own thread, one frame
        ahead of cropping and classification."""
        cmd = [self.binary, *self.configs[("full", "classifier")], "--dir", str(folder), "--loop",
               "--max-frames", str(frames), "--stats-every", "0", "--threads", str(threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        found = re.search(r"done: .*processed \d+ \(([\d.]+) fps\)", done.stderr)
        if done.returncode != 0 or not found:
            sys.exit(f"compare: edge --dir failed: {done.stderr.strip()}")
        return float(found.group(1)), None


def time_process(cmd, out):
    """Wall seconds from start to exit, and peak resident MiB (from /usr/bin/time's %M), of
    one process: measured the same way for edge and the Python reference."""
    t = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-o", str(out), "-f", "%M", *cmd],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"compare: {' '.join(map(str, cmd))} failed: {done.stderr.strip()}")
    return seconds, int(out.read_text().split()[-1]) / 1024


def read_f32(path, shape):
    return np.fromfile(path, dtype="<f4").reshape(shape)


# ---------------------------------------------------------------------------------------------
# ONNX Runtime and LiteRT.

def ort_options(threads):
    """ORT on the CPU as the timings run it: `threads` for each operator, one at a time, every
    graph optimisation."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def ort_session(path, opts):
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OrtModel:
    def __init__(self, path, threads):
        self.session = ort_session(path, ort_options(threads))
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


def ort_layers(path, x, runs, prefix):
    """ONNX Runtime's own per-node profile of the classifier at 1 thread: {node: (kind, median
    ms)}, kinds as `layer_kind` names them, names without ORT's layout suffix."""
    opts = ort_options(1)
    opts.enable_profiling = True
    opts.profile_file_prefix = str(prefix)
    session = ort_session(path, opts)
    name = session.get_inputs()[0].name
    warm = 10
    for _ in range(warm + runs):
        session.run(None, {name: x})
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    times, kinds = {}, {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        node = e["name"][: -len("_kernel_time")].removesuffix("_nchwc")
        times.setdefault(node, []).append(e["dur"] / 1e3)
        kinds[node] = ort_kind(e["args"])
    return {n: (kinds[n], statistics.median(t[warm:])) for n, t in times.items()}


def ort_kind(args):
    """An ORT node's kind: depthwise, the other convolutions (1×1, full, dense), layout
    reordering or other."""
    op = args.get("op_name", "")
    if op in ("Conv", "FusedConv"):
        x, w = (next(iter(s.values())) for s in args["input_type_shape"][:2])
        return "depthwise" if w[1] == 1 and w[0] == x[1] > 1 else "convolution"
    if op in ("Gemm", "FusedGemm", "MatMul"):
        return "convolution"
    if op.startswith("Reorder"):
        return "layout"
    return "other"


def tract_kind(op):
    """tract's op types in the same kinds: its convolutions other than depthwise are matrix
    products (with their operand packing, padding and im2col); activations stand alone where
    ORT fuses them into the convolution."""
    if op == "DepthWiseConv":
        return "depthwise"
    if op.startswith(("OptMatMul", "LazyIm2col", "Pad")):
        return "convolution"
    if op.startswith("OptBinChain"):
        return "activation"
    return "other"


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
        "them alike, so the ratios are the figures to read. tract runs each model single-threaded "
        "(edge is built without tract's multithread feature); edge's live loop with `--threads 2` "
        "runs the detector on a second thread, beside cropping and classification.",
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
        "(`trainer/examples/onnx_to_tflite.rs`), the same weights; LiteRT runs it, and "
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
        "## Memory and start-up",
        "",
        f"One process per photo (astronaut.png), {rounds} rounds interleaved, medians: wall time "
        "from start to exit (models loaded and prepared, the photo analysed, its result printed) "
        "and peak resident memory (`/usr/bin/time -f %M`). edge: `edge --json --detector "
        "<full range> --model models/classifier.onnx --file astronaut.png` (release); the "
        "reference: `python reference.py --detector <full range> --classifier <classifier "
        ".tflite> astronaut.png` (imports NumPy, Pillow and LiteRT only).",
        "",
        "| process | start to exit, s | peak RSS, MiB |",
        "| --- | ---: | ---: |",
    ]
    for name, values in v["startup"].items():
        secs = statistics.median(s for s, _ in values)
        mib = statistics.median(m for _, m in values)
        lines.append(f"| {name} | {secs:.3f} | {mib:.1f} |")
    lines += [
        "",
        "## Per stage",
        "",
        f"`edge bench --file astronaut.png --runs {runs}` (512×512 PNG, one face), release, with "
        "the default classifier (models/classifier.onnx); median over the rounds of each "
        "round's median, ms:",
        "",
        "| stage | short range (128) | full range (192) |",
        "| --- | ---: | ---: |",
    ]
    stage_rows = [("decode", "decode astronaut.png (512×512 PNG)"),
                  ("detect", "detect, whole stage (letterbox, model, decoding, NMS)"),
                  ("detector_model", "detector model run alone"),
                  ("crop", "crop one face"),
                  ("classify", "classify one face (normalise, model run)")]
    st = v["stages"]
    for key, label in stage_rows:
        cells = []
        for detector in ["short", "full"]:
            values = [r[key]["median"] for r in st.get(detector, []) if r.get(key)]
            cells.append(f"{statistics.median(values):.2f}" if values else "—")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "## Where tract's time goes",
        "",
        "`edge bench --profile` (tract's per-node evaluation hook, medians per node; the full-range "
        "detector on astronaut.png letterboxed and the classifier on its face crop):",
        "",
    ]
    lines += [summary(p) for p in v["profiles"]]
    classifier = next(p for p in v["profiles"] if p["model"] == "classifier")
    lines += ["", *layer_tables(classifier, v["ort_profile"])]
    for p in v["profiles"]:
        lines += ["", *profile_tables(p, top=10)]
    path.write_text("\n".join(lines) + "\n")


def model_label(key, tract=False):
    return {
        "classifier": f"classifier ({CLASSIFIER_SIZE}×{CLASSIFIER_SIZE} input, .onnx)" if tract
        else "classifier",
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


def layer_tables(tract, ort_nodes):
    """The classifier's time by kind of layer, tract against ONNX Runtime's own profile, and the
    convolutions both name alike (tract keeps the ONNX node's name as the first part of its
    own, ORT adds a layout suffix)."""
    kinds = ["depthwise", "convolution", "activation", "layout", "other"]
    t_ms = {k: 0.0 for k in kinds}
    for n in tract["nodes"]:
        t_ms[tract_kind(n["op"])] += n["ms"]
    o_ms = {k: 0.0 for k in kinds}
    for kind, ms in ort_nodes.values():
        o_ms[kind] += ms
    out = ["The classifier layer by layer against ONNX Runtime's own profiler (1 thread, same "
           "input; each runtime's per-node medians, so the sums run above the plain timings): ",
           "", "| layers | tract ms | ORT ms | tract ÷ ORT |", "| --- | ---: | ---: | ---: |"]
    labels = {"depthwise": "depthwise 3×3", "convolution": "other convolutions (1×1, stem, dense)",
              "activation": "ReLU6 on its own (ORT fuses it)", "layout": "layout reordering",
              "other": "other"}
    for k in kinds:
        if t_ms[k] or o_ms[k]:
            ratio = f"{t_ms[k] / o_ms[k]:.2f}" if t_ms[k] and o_ms[k] else "—"
            out.append(f"| {labels[k]} | {t_ms[k]:.2f} | {o_ms[k]:.2f} | {ratio} |")
    t_total, o_total = sum(t_ms.values()), sum(o_ms.values())
    out.append(f"| all | {t_total:.2f} | {o_total:.2f} | {t_total / o_total:.2f} |")
    pairs = []
    for n in tract["nodes"]:
        base = n["name"].split(".")[0]
        if n["op"] == "OptMatMul" and base in ort_nodes and ort_nodes[base][0] == "convolution":
            pairs.append((base, n["output"], n["ms"], ort_nodes[base][1]))
    pairs.sort(key=lambda p: -p[2])
    out += ["", f"The {min(12, len(pairs))} slowest of the {len(pairs)} convolutions both "
            "runtimes name alike (tract's matrix product alone, without its operand packing):",
            "", "| node | tract output | tract ms | ORT ms | tract ÷ ORT |",
            "| --- | --- | ---: | ---: | ---: |"]
    for base, shape, t, o in pairs[:12]:
        out.append(f"| {base} | {shape} | {t:.3f} | {o:.3f} | {t / o:.2f} |")
    return out


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
