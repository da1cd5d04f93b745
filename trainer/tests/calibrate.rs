//! `trainer calibrate` on the fetched photos' real faces with the default classifier, then the
//! real `edge` binary on the same photos with the calibrated model and no flag.

use crate::support::{root, run_folder_with, PHOTOS_WITH_FACES};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn calibrate(model: &Path, real: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("EDGE_MODELS", root().join("models"))
        .args(["calibrate", "--all-faces", "--model"])
        .arg(model)
        .arg("--real")
        .arg(real)
        .args(extra)
        .output()
        .expect("trainer runs")
}

/// edge --json on `dir` with `model`: (faces, faces labelled FAKE).
fn edge_labels(model: &Path, dir: &Path) -> (usize, usize) {
    let edge = Path::new(env!("CARGO_BIN_EXE_trainer")).with_file_name("edge");
    assert!(edge.is_file(), "{} not built: run `cargo test --workspace`", edge.display());
    let out = Command::new(&edge)
        .env("EDGE_MODELS", root().join("models"))
        .arg("--json")
        .arg("--model")
        .arg(model)
        .arg("--file")
        .arg(dir)
        .output()
        .expect("edge runs");
    assert!(out.status.success(), "edge: {}", String::from_utf8_lossy(&out.stderr));
    let (mut faces, mut fake) = (0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let report: Value = serde_json::from_str(line).expect("JSON line");
        for face in report["faces"].as_array().expect("faces") {
            faces += 1;
            fake += usize::from(face["label"] == "FAKE");
        }
    }
    (faces, fake)
}

#[test]
fn a_calibrated_model_calls_at_most_the_share_asked_fake_in_edge() {
    // Every photo with a face (35 faces) and one without.
    let photos: Vec<&str> = PHOTOS_WITH_FACES.iter().copied().chain(["chelsea.png"]).collect();
    let tmp = run_folder_with("trainer-calibrate", &photos);
    let real = tmp.join("data/real");
    let calibrated = tmp.join("calibrated.onnx");
    let run = calibrate(
        &root().join("models/classifier.onnx"),
        &real,
        &["--max-false-alarm", "0.1", "--out", calibrated.to_str().expect("UTF-8 path")],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "calibrate: {}", String::from_utf8_lossy(&run.stderr));
    // 35 faces, 10 %: at most 3 called FAKE; calibrate says how many, and edge agrees.
    let called: usize = stdout
        .split(" of 35 real faces called FAKE")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in: {stdout}"));
    assert!((1..=3).contains(&called), "{stdout}");
    assert_eq!(edge_labels(&calibrated, &real), (35, called));
    // 35 faces are too few to estimate 10 % well: a warning says so.
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("warning: only 35 real faces"), "{stderr}");

    // In place, at 0: the original kept as .bak, no face called FAKE.
    let copy = tmp.join("copy.onnx");
    std::fs::copy(root().join("models/classifier.onnx"), &copy).expect("copy");
    let run = calibrate(&copy, &real, &["--max-false-alarm", "0"]);
    assert!(run.status.success(), "calibrate: {}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(edge_labels(&copy, &real), (35, 0));
    // No alarm in 35 faces still allows up to 1 − 0.05^(1/35) = 8.2 % on new faces.
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("0 of 35 real faces called FAKE")
            && stdout.contains("on new faces like these at most 8.2 %, with 95 % confidence"),
        "{stdout}"
    );
    let backup = std::fs::read(tmp.join("copy.bak.onnx")).expect("backup");
    assert_eq!(backup, std::fs::read(root().join("models/classifier.onnx")).expect("model"));
}

#[test]
fn calibrate_refuses_bad_input_in_one_line() {
    let tmp = run_folder_with("trainer-calibrate-bad", &["astronaut.png"]);
    let model = root().join("models/classifier.onnx");
    let real = tmp.join("data/real");
    let nowhere = tmp.join("nowhere");
    let detector = root().join("models/face_detection_short_range.tflite");
    for (model, real, rate, cause) in [
        (&model, &real, "1.5", "not a share of the real faces"),
        (&model, &nowhere, "0.1", "no such file or folder"),
        (&detector, &real, "0.1", "classifier"),
    ] {
        let run = calibrate(model, real, &["--max-false-alarm", rate, "--out", "unused.onnx"]);
        assert_eq!(run.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(cause), "{stderr}");
    }
    assert!(!Path::new("unused.onnx").exists());
}
