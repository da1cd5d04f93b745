//! `trainer eval` with the default classifier on the fetched photos, sorted into a `real/` and a
//! `fake/` folder (the labels only give the arithmetic something to score; none of these faces is
//! a deepfake). Every face's p(FAKE) is checked against the `edge` binary's, and AUC, EER and AP
//! against a second implementation here, from the CSV the command writes.

use crate::support::{bare_trainer, photo, root, run_folder_with, Scratch};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const REAL: [&str; 5] = ["astronaut.png", "einstein.jpg", "takeo.ppm", "tongue.jpg", "chelsea.png"];
const FAKE: [&str; 4] = ["lenna.png", "breakingbad.jpg", "t1.jpg", "sample1.jpg"];

/// A folder with `data/real/` (REAL, chelsea.png has no face) and `data/fake/` (FAKE and a file
/// named .jpg that is not an image).
fn labelled_folder() -> Scratch {
    let tmp = run_folder_with("trainer-eval", &REAL);
    let fake = tmp.join("data/fake");
    std::fs::create_dir_all(&fake).expect("mkdir");
    for name in FAKE {
        std::fs::copy(photo(name), fake.join(name)).expect("copy");
    }
    std::fs::write(fake.join("broken.jpg"), "not a JPEG").expect("write");
    tmp
}

fn trainer_eval(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("EDGE_MODELS", root().join("models"))
        .args(["eval", "--model"])
        .arg(root().join("models/classifier.onnx"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("trainer runs")
}

pub struct Row {
    pub file: PathBuf,
    pub face: usize,
    pub fake: bool,
    pub p_fake: f32,
    pub jpeg_quality: f64,
    pub face_size: f32,
}

pub fn read_csv(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).expect("faces.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("root,file,face,x0,y0,x1,y1,label,p_fake,sharpness,jpeg_quality,face_size,brightness")
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 13, "{line}");
            Row {
                file: PathBuf::from(f[1]),
                face: f[2].parse().expect("face"),
                fake: match f[7] {
                    "FAKE" => true,
                    "REAL" => false,
                    other => panic!("label {other}"),
                },
                p_fake: f[8].parse().expect("p_fake"),
                jpeg_quality: f[10].parse().expect("jpeg_quality"),
                face_size: f[11].parse().expect("face_size"),
            }
        })
        .collect()
}

/// AUC of `score` as the Mann-Whitney statistic: the share of (fake, real) pairs ranked right,
/// ties half.
fn pairwise_auc(rows: &[Row], score: impl Fn(&Row) -> f32) -> f64 {
    let (mut right, mut pairs) = (0.0, 0.0);
    for f in rows.iter().filter(|r| r.fake) {
        for r in rows.iter().filter(|r| !r.fake) {
            pairs += 1.0;
            right += match score(f).total_cmp(&score(r)) {
                std::cmp::Ordering::Greater => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Less => 0.0,
            };
        }
    }
    right / pairs
}

/// AP as the mean, over the fake faces, of the precision among the faces scored at least as high.
fn mean_precision_at_fakes(rows: &[Row]) -> f64 {
    let fakes: Vec<&Row> = rows.iter().filter(|r| r.fake).collect();
    let total: f64 = fakes
        .iter()
        .map(|f| {
            let above: Vec<&Row> = rows.iter().filter(|r| r.p_fake >= f.p_fake).collect();
            above.iter().filter(|r| r.fake).count() as f64 / above.len() as f64
        })
        .sum();
    total / fakes.len() as f64
}

/// EER by trying every score as the threshold, highest first: the false positive rate where it is
/// closest to the false negative rate.
fn brute_force_eer(rows: &[Row]) -> f64 {
    let mut thresholds: Vec<f32> = rows.iter().map(|r| r.p_fake).collect();
    thresholds.push(f32::INFINITY);
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let count = |fake: bool| rows.iter().filter(|r| r.fake == fake).count() as f64;
    let (mut best, mut eer) = (f64::INFINITY, f64::NAN);
    for t in thresholds {
        let fpr = rows.iter().filter(|r| !r.fake && r.p_fake >= t).count() as f64 / count(false);
        let fnr = rows.iter().filter(|r| r.fake && r.p_fake < t).count() as f64 / count(true);
        if (fnr - fpr).abs() < best {
            (best, eer) = ((fnr - fpr).abs(), fpr);
        }
    }
    eer
}

#[test]
fn eval_scores_as_edge_does_and_its_figures_follow_from_its_csv() {
    let tmp = labelled_folder();
    let out = tmp.join("eval");
    let run = trainer_eval(&tmp.join("data"), &out, &[]);
    assert!(run.status.success(), "trainer eval: {}", String::from_utf8_lossy(&run.stderr));

    // One face per image (the largest): every image with a face, none of chelsea.png and broken.jpg.
    let rows = read_csv(&out.join("faces.csv"));
    assert_eq!(rows.len(), REAL.len() - 1 + FAKE.len());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("JSON");
    let no_face = summary["no_face"].as_array().expect("no_face");
    assert_eq!(no_face.len(), 1);
    assert!(no_face[0].as_str().expect("path").ends_with("chelsea.png"));
    let unreadable = summary["unreadable"].as_array().expect("unreadable");
    assert_eq!(unreadable.len(), 1);
    assert!(unreadable[0][0].as_str().expect("path").ends_with("broken.jpg"), "{unreadable:?}");

    // The same p(FAKE) as the edge binary gives the same face (the largest of each image).
    let edge = Path::new(env!("CARGO_BIN_EXE_trainer")).with_file_name("edge");
    assert!(edge.is_file(), "{} not built: run `cargo test --workspace`", edge.display());
    let files: Vec<&PathBuf> = rows.iter().map(|r| &r.file).collect();
    let json = Command::new(&edge)
        .env("EDGE_MODELS", root().join("models"))
        .arg("--json")
        .arg("--file")
        .args(&files)
        .output()
        .expect("edge runs");
    assert!(json.status.success(), "edge: {}", String::from_utf8_lossy(&json.stderr));
    let mut largest: HashMap<String, f64> = HashMap::new();
    for line in String::from_utf8_lossy(&json.stdout).lines() {
        let report: Value = serde_json::from_str(line).expect("JSON line");
        let area = |f: &Value| {
            let b: Vec<f64> =
                f["box"].as_array().expect("box").iter().filter_map(Value::as_f64).collect();
            (b[2] - b[0]) * (b[3] - b[1])
        };
        let faces = report["faces"].as_array().expect("faces");
        let face = faces.iter().max_by(|a, b| area(a).total_cmp(&area(b))).expect("a face");
        let file = report["file"].as_str().expect("file").to_string();
        largest.insert(file, face["p_fake"].as_f64().expect("p_fake"));
    }
    for row in &rows {
        let name = row.file.file_name().expect("name").to_string_lossy().into_owned();
        let edge_p = largest
            .iter()
            .find(|(file, _)| file.ends_with(&name))
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("edge did not report {name}"));
        assert!(
            (edge_p - f64::from(row.p_fake)).abs() < 1e-3,
            "{name}: {edge_p} vs {}",
            row.p_fake
        );
    }

    // The figures follow from the CSV.
    let pooled = &summary["pooled"];
    let near = |key: &str, want: f64| {
        let got = pooled[key].as_f64().unwrap_or_else(|| panic!("{key}: {pooled}"));
        assert!((got - want).abs() < 1e-9, "{key}: {got} against {want}");
    };
    near("auc", pairwise_auc(&rows, |r| r.p_fake));
    let interval: Vec<f64> = pooled["auc_interval"]
        .as_array()
        .expect("an AUC interval with both classes")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let auc = pooled["auc"].as_f64().expect("auc");
    assert!(interval.len() == 2 && interval[0] <= auc && auc <= interval[1], "{interval:?} {auc}");
    near("average_precision", mean_precision_at_fakes(&rows));
    near("eer", brute_force_eer(&rows));
    let threshold = summary["threshold"].as_f64().expect("threshold") as f32;
    let called =
        |fake: bool| rows.iter().filter(|r| r.fake == fake && r.p_fake >= threshold).count();
    let reals = rows.iter().filter(|r| !r.fake).count();
    near("false_alarm_rate", called(false) as f64 / reals as f64);
    let right = called(true) + (reals - called(false));
    near("accuracy", right as f64 / rows.len() as f64);
    assert_eq!(pooled["real_faces"], reals);
    // The shortcut audit: four cues, the face size's AUC as the CSV gives it; JPEG files have a
    // quality below 100, lossless ones (PNG, PPM) count as 100.
    let audit = summary["shortcut_audit"].as_array().expect("an audit with both classes");
    let cues: Vec<&str> = audit.iter().filter_map(|a| a["cue"].as_str()).collect();
    assert_eq!(cues, ["sharpness", "jpeg_quality", "face_size", "brightness"]);
    let size_auc = audit[2]["auc"].as_f64().expect("auc");
    assert!((size_auc - pairwise_auc(&rows, |r| r.face_size)).abs() < 1e-9, "{size_auc}");
    for row in &rows {
        let jpeg = row.file.extension().is_some_and(|e| e == "jpg");
        assert_eq!(row.jpeg_quality < 100.0, jpeg, "{}: {}", row.file.display(), row.jpeg_quality);
    }
    for chart in ["roc.png", "pr.png", "scores.png"] {
        let img = image::open(out.join(chart)).unwrap_or_else(|e| panic!("{chart}: {e}"));
        assert_eq!((img.width(), img.height()), (640, 420), "{chart}");
    }
    let md = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert!(
        md.contains("| ROC AUC (95 % interval) |")
            && md.contains("## Shortcut audit")
            && md.contains("Images without a face: 1; unreadable: 1"),
        "{md}"
    );
}

#[test]
fn eval_with_every_face_and_one_class_only() {
    let tmp = run_folder_with("trainer-eval-one-class", &["t1.jpg", "astronaut.png"]);
    let out = tmp.join("eval");
    let run = trainer_eval(&tmp.join("data"), &out, &["--all-faces"]);
    assert!(run.status.success(), "trainer eval: {}", String::from_utf8_lossy(&run.stderr));
    // t1.jpg has six faces, astronaut.png one.
    let rows = read_csv(&out.join("faces.csv"));
    assert_eq!(rows.len(), 7);
    let mut t1: Vec<usize> =
        rows.iter().filter(|r| r.file.ends_with("t1.jpg")).map(|r| r.face).collect();
    t1.sort();
    assert_eq!(t1, [0, 1, 2, 3, 4, 5]);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("JSON");
    // Real faces only: AUC, EER and AP undefined, said so; the false alarms still counted.
    let pooled = &summary["pooled"];
    assert!(pooled["auc"].is_null() && pooled["auc_interval"].is_null() && pooled["eer"].is_null());
    assert!(summary["pooled"]["false_alarm_rate"].is_f64());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("Only one class was found"), "{stdout}");
    assert!(out.join("scores.png").is_file() && !out.join("roc.png").exists());
}

#[test]
fn eval_refuses_a_missing_folder_and_a_folder_without_classes_in_one_line() {
    let tmp = run_folder_with("trainer-eval-bad", &[]);
    for (data, cause) in
        [(tmp.join("nowhere"), "no such folder"), (tmp.join("data/real"), "no class folders")]
    {
        let run = trainer_eval(&data, &tmp.join("eval"), &[]);
        assert_eq!(run.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(cause) && stderr.contains(&*data.to_string_lossy()), "{stderr}");
    }
    // A model that is not a classifier (the face detector): one line naming it, before any image.
    let detector = root().join("models/face_detection_full_range.tflite");
    let run = bare_trainer(
        &["eval"],
        &[("--model", &detector), ("--data", &tmp.join("data")), ("--out", &tmp.join("eval"))],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("face_detection_full_range") && stderr.contains("no metadata"),
        "{stderr}"
    );
}

/// An `--out` that cannot be written is one line at start naming it, before any photo is read,
/// for training, eval and fakes alike (issue 27, class 5: training said only "Operation not
/// permitted (os error 1)", after cropping every photo).
#[test]
fn an_out_folder_that_cannot_be_written_is_one_line_at_start() {
    let tmp = run_folder_with("trainer-bad-out", &["astronaut.png"]);
    let file = tmp.join("notes.txt");
    std::fs::write(&file, "not a folder").expect("writes a file");
    let out = file.join("run");
    let (data, cache) = (tmp.join("data"), tmp.join("cache"));
    let model = root().join("models/classifier.onnx");
    let runs = [
        bare_trainer(&["--sbi"], &[("--data", &data), ("--out", &out), ("--cache", &cache)]),
        bare_trainer(&["eval"], &[("--model", &model), ("--data", &data), ("--out", &out)]),
        bare_trainer(&["fakes"], &[("--data", &data), ("--out", &out), ("--cache", &cache)]),
    ];
    for run in runs {
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let named = format!("--out: {}: cannot write files there", out.display());
        assert!(stderr.contains(&named), "{stderr}");
    }
    let cropped = std::fs::read_dir(&cache).map(|mut d| d.next().is_some()).unwrap_or(false);
    assert!(!cropped, "no photo was cropped");
}
