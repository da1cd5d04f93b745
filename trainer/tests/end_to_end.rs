//! A tiny training run of the real `trainer` binary on real photos (real faces only, fakes made by
//! self-blending), whose exported models the real `edge` binary then loads and runs.

use crate::support::{bare_trainer, fresh_run_folder, photo, root, run_folder_with};
use std::path::Path;
use std::process::Command;
use trainer::eval::metrics::ThresholdRule;

/// Runs the trainer on `<tmp>/data` (self-blended fakes, 64 px, batch 4, 40 % validation) with
/// the crop cache in `<tmp>/cache`.
fn trainer(tmp: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("EDGE_MODELS", root().join("models"))
        .args(["--sbi", "--input-size", "64", "--batch-size", "4", "--val-fraction", "0.4"])
        .args(extra)
        .arg("--data")
        .arg(tmp.join("data"))
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(tmp.join("cache"))
        .output()
        .expect("trainer runs")
}

#[test]
fn tiny_run_trains_reports_exports_and_edge_runs_the_models() {
    let tmp = fresh_run_folder("trainer-e2e");
    let real = tmp.join("data/real");
    let png = std::fs::read(photo("lenna.png")).expect("read");
    std::fs::write(real.join("truncated.png"), &png[..png.len() / 4]).expect("write");
    std::fs::write(real.join("notes.png"), b"not a picture").expect("write");
    // A face-less photo among the reals is reported, not trained on.
    std::fs::copy(photo("coffee.png"), real.join("coffee.png")).expect("copy");

    let run = tmp.join("run");
    // A high learning rate, so that in three epochs the outputs move well away from 0.5 and the
    // parity checks compare real differences between images.
    let out = trainer(&tmp, &run, &["--epochs", "3", "--lr", "3e-3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "trainer failed:\n{stderr}");
    for bad in ["truncated.png", "notes.png"] {
        assert!(
            stderr.lines().any(|l| l.starts_with("skipped") && l.contains(bad)),
            "{bad} not listed:\n{stderr}"
        );
    }
    assert!(
        stderr.lines().any(|l| l.starts_with("no face in") && l.contains("coffee.png")),
        "{stderr}"
    );
    assert!(stderr.contains("5 face crops"), "{stderr}");

    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("metrics.json")).expect("metrics.json"),
    )
    .expect("JSON");
    for key in ["accuracy", "precision", "recall", "f1", "auc", "threshold", "confusion"] {
        assert!(metrics.get(key).is_some(), "metrics.json lacks {key}: {metrics}");
    }
    // The AUC's interval holds it (the validation set has both classes: fakes are made of it).
    let auc = metrics["auc"].as_f64().expect("auc");
    let interval: Vec<f64> = (metrics["auc_interval"].as_array().into_iter().flatten())
        .filter_map(serde_json::Value::as_f64)
        .collect();
    assert!(interval.len() == 2 && interval[0] <= auc && auc <= interval[1], "{metrics}");
    for png in ["loss.png", "accuracy.png", "roc.png", "confusion.png"] {
        let img = image::open(run.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(img.width() > 100 && img.height() > 100);
    }
    for file in
        ["config.json", "split.json", "history.json", "confusion.txt", "report.md", "model.json"]
    {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let report = std::fs::read_to_string(run.join("report.md")).expect("report");
    assert!(report.contains("largest |p(FAKE) − burn's|"), "{report}");
    assert!(report.contains("(95 % interval "), "{report}");
    assert!(report.contains("on new faces like them the share may be up to"), "{report}");

    // The second run finds every crop in the cache: no detection, same crops, same split.
    let rerun = trainer(&tmp, &tmp.join("run2"), &["--epochs", "1"]);
    let rerun_log = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{rerun_log}");
    // 5 photos with faces and coffee.png (no face) come from the cache; the 2 unreadable files are
    // read again and fail again.
    assert!(rerun_log.contains("6 photos from the crop cache"), "{rerun_log}");
    assert!(stderr.contains("0 photos from the crop cache"), "{stderr}");
    let split = |dir: &Path| std::fs::read_to_string(dir.join("split.json")).expect("split");
    assert_eq!(split(&run), split(&tmp.join("run2")), "same seed, same split");

    // Both exports run in the real edge binary, with the same probabilities.
    let edge = Path::new(env!("CARGO_BIN_EXE_trainer")).with_file_name("edge");
    assert!(edge.is_file(), "{} not built: run `cargo test --workspace`", edge.display());
    let mut p_fake = vec![];
    for model in ["model.onnx", "model.tflite"] {
        let out = Command::new(&edge)
            .env("EDGE_MODELS", root().join("models"))
            .arg("--json")
            .arg("--model")
            .arg(run.join(model))
            .arg("--file")
            .arg(photo("astronaut.png"))
            .output()
            .expect("edge runs");
        assert!(
            out.status.success(),
            "edge with {model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON line");
        let face = &line["faces"][0];
        assert!(face["label"] == "REAL" || face["label"] == "FAKE", "{line}");
        p_fake.push(face["p_fake"].as_f64().expect("p_fake"));
    }
    assert!((p_fake[0] - p_fake[1]).abs() < 1e-4, "ONNX {} vs TFLite {}", p_fake[0], p_fake[1]);
    assert!((p_fake[0] - 0.5).abs() > 1e-3, "the trained model still answers 0.5: {p_fake:?}");
}

/// The trainer binary with the models folder set, and nothing else.
/// history.json without the timings, which no two runs share.
/// (p(FAKE), is FAKE) of every validation face, from `validation.csv`, whose `called` column must
/// agree with p(FAKE) against the run's threshold.
fn validation_scores(run: &Path) -> Vec<(f32, bool)> {
    let threshold = metrics_of(run)["threshold"].as_f64().expect("threshold") as f32;
    let csv = std::fs::read_to_string(run.join("validation.csv")).expect("validation.csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("file,face,made,label,p_fake,called"));
    let scores: Vec<(f32, bool)> = lines
        .map(|line| {
            let fields: Vec<&str> = line.rsplitn(5, ',').collect();
            let p: f32 = fields[1].parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(fields[0], if p >= threshold { "FAKE" } else { "REAL" }, "{line}");
            (p, fields[2] == "FAKE")
        })
        .collect();
    assert!(scores.iter().any(|s| s.1) && scores.iter().any(|s| !s.1), "{csv}");
    scores
}

fn metrics_of(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("metrics.json")).expect("metrics.json"))
        .expect("JSON")
}

fn history_without_timings(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("history.json")).expect("history.json");
    let mut history: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON");
    for epoch in &mut history {
        let fields = epoch.as_object_mut().expect("an object per epoch");
        assert!(fields.remove("seconds").is_some() && fields.remove("images_per_second").is_some());
    }
    history
}

#[test]
fn a_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run() {
    let tmp = fresh_run_folder("trainer-resume");
    let (data, cache) = (tmp.join("data"), tmp.join("cache"));
    // Self-blends and augmentation on, so every random stream is exercised; a high learning rate
    // so that the second epoch moves the weights far from where the first left them.
    let settings = [
        "--sbi",
        "--input-size",
        "32",
        "--batch-size",
        "4",
        "--val-fraction",
        "0.4",
        "--lr",
        "3e-3",
    ];
    let train = |out: &Path, extra: &[&str]| {
        let args: Vec<&str> = settings.iter().chain(extra).copied().collect();
        let out = bare_trainer(&args, &[("--data", &data), ("--cache", &cache), ("--out", out)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };

    let whole = tmp.join("whole");
    train(&whole, &["--epochs", "2"]);
    let parts = tmp.join("parts");
    train(&parts, &["--epochs", "1"]);
    let first = history_without_timings(&parts);
    assert_eq!(first.len(), 1);
    // Resumed with nothing but the run folder and the new epoch count: the rest is the saved
    // configuration.
    let resumed = bare_trainer(&["--resume", "--epochs", "2"], &[("--out", &parts)]);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("resuming from") && log.contains("state.json"), "{log}");
    assert!(log.contains("epoch 2/2") && !log.contains("epoch 1/2"), "epoch 1 ran again:\n{log}");

    // Bit for bit: the same epochs, scores, chosen model and exported weights.
    assert_eq!(history_without_timings(&whole), history_without_timings(&parts));
    assert_eq!(history_without_timings(&parts)[0], first[0]);
    for file in ["metrics.json", "model.json", "model.onnx"] {
        let read = |run: &Path| std::fs::read(run.join(file)).expect(file);
        assert!(read(&whole) == read(&parts), "{file} differs between the whole and resumed runs");
    }
    // Only the latest epoch's files and the best epoch's model are kept.
    let mut kept: Vec<String> = std::fs::read_dir(parts.join("checkpoints"))
        .expect("checkpoints/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(parts.join("checkpoints/state.json")).expect("state.json"),
    )
    .expect("JSON");
    let best = state["best_epoch"].as_u64().expect("best_epoch");
    let mut expected = vec!["adam-2.bpk", "model-2.bpk", "state.json"];
    if best == 1 {
        expected.push("model-1.bpk");
    }
    expected.sort();
    assert_eq!(kept, expected);

    // The threshold rule may change on resume: a run with nothing left to train only chooses the
    // threshold again from the same validation scores, here so that no REAL face is called FAKE.
    let youden = metrics_of(&parts);
    let scores = validation_scores(&parts);
    let strict = bare_trainer(
        &["--resume", "--epochs", "2", "--max-false-alarm", "0"],
        &[("--out", &parts)],
    );
    let log = String::from_utf8_lossy(&strict.stderr);
    assert!(strict.status.success(), "{log}");
    assert!(!log.contains("epoch 2/2"), "epoch 2 ran again:\n{log}");
    assert_eq!(validation_scores(&parts), scores);
    let (p, fake): (Vec<f32>, Vec<bool>) = scores.iter().map(|s| (s.0, s.1)).unzip();
    for (rule, metrics) in
        [(ThresholdRule::Youden, &youden), (ThresholdRule::MaxFalseAlarm(0.0), &metrics_of(&parts))]
    {
        let threshold = metrics["threshold"].as_f64().expect("threshold") as f32;
        assert_eq!(threshold, trainer::eval::metrics::threshold(&p, &fake, rule), "{rule:?}");
        let false_alarms = scores.iter().filter(|s| !s.1 && s.0 >= threshold).count();
        assert_eq!(metrics["confusion"]["false_fake"], false_alarms, "{metrics}");
    }
    assert_eq!(metrics_of(&parts)["confusion"]["false_fake"], 0);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(parts.join("model.json")).expect("model.json"))
            .expect("JSON");
    assert_eq!(meta["threshold"], metrics_of(&parts)["threshold"], "{meta}");
    let report = std::fs::read_to_string(parts.join("report.md")).expect("report.md");
    assert!(report.contains("at most 0.0 % of the REAL faces FAKE"), "{report}");
    // One budget may be changed for another, as a whole.
    let looser = bare_trainer(
        &["--resume", "--epochs", "2", "--max-false-alarm", "0.5"],
        &[("--out", &parts)],
    );
    assert!(looser.status.success(), "{}", String::from_utf8_lossy(&looser.stderr));
    let threshold = metrics_of(&parts)["threshold"].as_f64().expect("threshold") as f32;
    assert_eq!(
        threshold,
        trainer::eval::metrics::threshold(&p, &fake, ThresholdRule::MaxFalseAlarm(0.5))
    );

    // Settings that change what is computed are refused, on one line that names them.
    let conflict =
        bare_trainer(&["--resume", "--input-size", "48", "--epochs", "3"], &[("--out", &parts)]);
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(!conflict.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--input-size 48") && err.contains("config.json"), "{err}");

    // A damaged or missing checkpoint file fails on one line naming it.
    let model = parts.join("checkpoints/model-2.bpk");
    let bytes = std::fs::read(&model).expect("model-2.bpk");
    std::fs::write(&model, &bytes[..bytes.len() / 2]).expect("truncate");
    let damaged = bare_trainer(&["--resume", "--epochs", "3"], &[("--out", &parts)]);
    let err = String::from_utf8_lossy(&damaged.stderr);
    assert!(!damaged.status.success());
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("trainer: ") && last.contains("model-2.bpk"), "{err}");
    std::fs::remove_file(parts.join("checkpoints/state.json")).expect("rm");
    let missing = bare_trainer(&["--resume", "--epochs", "3"], &[("--out", &parts)]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("trainer: ") && last.contains("state.json"), "{err}");
}

#[test]
fn a_resume_on_crops_from_a_changed_detector_file_is_refused() {
    // Both detectors find the same number of faces in each of these photos, so the photos, their
    // face counts and the split are the same either way: only the crops themselves differ.
    let photos = ["astronaut.png", "lenna.png", "takeo.ppm", "tongue.jpg", "breakingbad.jpg"];
    let tmp = run_folder_with("trainer-resume-detector", &photos);
    let models = root().join("models");
    let count = |file: &str, photo_name: &str| {
        let detector = edge::Detector::load(&models.join(file), Default::default()).expect(file);
        let img = image::open(photo(photo_name)).expect(photo_name).to_rgb8();
        detector.detect(&img).expect("detect").len()
    };
    for name in photos {
        assert_eq!(
            count("face_detection_short_range.tflite", name),
            count("face_detection_full_range.tflite", name),
            "{name}"
        );
    }
    let detector = tmp.join("detector.tflite");
    std::fs::copy(models.join("face_detection_short_range.tflite"), &detector).expect("copy");
    let run = tmp.join("run");
    let args = ["--sbi", "--input-size", "32", "--batch-size", "4", "--epochs", "1"];
    let paths =
        [("--data", tmp.join("data")), ("--out", run.clone()), ("--detector", detector.clone())];
    let paths: Vec<(&str, &Path)> = paths.iter().map(|(f, p)| (*f, p.as_path())).collect();
    let first = bare_trainer(&args, &paths);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));

    // The same file name now holds the other detector.
    std::fs::copy(models.join("face_detection_full_range.tflite"), &detector).expect("copy");
    let resumed = bare_trainer(&["--resume", "--epochs", "2"], &[("--out", &run)]);
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert!(!resumed.status.success(), "resumed on other crops:\n{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(last.contains("split.json") && last.contains("face crops changed"), "{err}");
}

/// Without the `wgpu` feature, `--backend wgpu` fails at once, on one line saying how to get it.
#[cfg(not(feature = "wgpu"))]
#[test]
fn backend_wgpu_without_its_feature_says_to_rebuild_with_it() {
    let tmp = fresh_run_folder("trainer-no-wgpu");
    let out = bare_trainer(
        &["--backend", "wgpu"],
        &[("--data", &tmp.join("data")), ("--out", &tmp.join("run"))],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--features wgpu"), "{err}");
}

/// `--fakes upsample` trains on up-sampling traces alone, and validates on one of every
/// validation real face; no X-ray head unless asked; a run saved before the kinds existed
/// (`"sbi": true`) reads as `fakes: [sbi]`, and resuming it with another kind is refused.
#[test]
fn fake_kinds_are_trained_validated_and_kept_on_resume() {
    let tmp = fresh_run_folder("trainer-kinds");
    let run = tmp.join("run");
    let args = ["--fakes", "upsample", "--input-size", "32", "--batch-size", "4", "--epochs", "1"];
    let out = bare_trainer(&args, &[("--data", &tmp.join("data")), ("--out", &run)]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("X-ray head"), "{log}");
    let saved = trainer::run::saved_config(&run).expect("the run's configuration");
    assert_eq!(saved.train.xray, 0.0);
    let csv = std::fs::read_to_string(run.join("validation.csv")).expect("validation.csv");
    let (real, made) = (csv.matches(",,REAL,").count(), csv.matches(",upsample,FAKE,").count());
    assert!(real > 0 && made == real && csv.lines().count() == 1 + 2 * real, "{csv}");

    let config = run.join("config.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).expect("config")).expect("JSON");
    let train = saved["train"].as_object_mut().expect("train settings");
    train.remove("fakes");
    train.insert("sbi".into(), serde_json::Value::Bool(true));
    std::fs::write(&config, serde_json::to_string_pretty(&saved).expect("JSON")).expect("write");
    let upgraded = trainer::run::saved_config(&run).expect("an older run's configuration");
    assert_eq!(upgraded.train.fakes, [trainer::fakes::kind::FakeKind::Sbi]);

    let resumed =
        bare_trainer(&["--resume", "--epochs", "2", "--fakes", "upsample"], &[("--out", &run)]);
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot resume with --fakes"), "{err}");
}

/// `--balance-classes` weighs a real face as much as the fakes made of it together (two kinds: a
/// real face 1.5, a fake 0.75); it and `--freeze-blocks` are saved with the run and kept on resume.
#[test]
fn balanced_classes_frozen_blocks_and_xray_are_saved_and_kept_on_resume() {
    let tmp = fresh_run_folder("trainer-balanced");
    let run = tmp.join("run");
    let args =
        ["--fakes", "sbi,upsample", "--balance-classes", "--freeze-blocks", "5", "--xray", "2"];
    let args = [&args[..], &["--input-size", "32", "--epochs", "1"]].concat();
    let paths: [(&str, &Path); 3] =
        [("--data", &tmp.join("data")), ("--out", &run), ("--cache", &tmp.join("cache"))];
    let out = bare_trainer(&args, &paths);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("loss weights: a real face 1.500, a fake 0.750"), "{log}");
    assert!(log.contains("X-ray head: the blend boundaries of sbi, weighed 2"), "{log}");
    let saved = trainer::run::saved_config(&run).expect("the run's configuration");
    assert!(saved.train.balance_classes);
    assert_eq!(saved.train.freeze_blocks, 5);
    assert_eq!(saved.train.xray, 2.0);

    let resumed = bare_trainer(&["--resume", "--epochs", "2"], &[("--out", &run)]);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("loss weights: a real face 1.500"), "{log}");
    let resumed = trainer::run::saved_config(&run).expect("the resumed run's configuration");
    assert_eq!(resumed.train.freeze_blocks, 5);
    assert_eq!(resumed.train.xray, 2.0);
}

/// `--fakes none` trains on the folders' own fakes alone: real photos only are refused on one line
/// (a bare run would make its default kinds); a kind that does not exist is refused, naming those
/// that do.
#[test]
fn fakes_none_needs_fake_photos_and_unknown_kinds_are_named() {
    let tmp = run_folder_with("trainer-fakes-none", &["astronaut.png"]);
    let (data, out, cache) = (tmp.join("data"), tmp.join("run"), tmp.join("cache"));
    let paths: [(&str, &Path); 2] = [("--data", &data), ("--out", &out)];
    let none = bare_trainer(&["--fakes", "none"], &[&paths[..], &[("--cache", &cache)]].concat());
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success(), "{err}");
    assert!(err.trim().lines().last().is_some_and(|l| l.contains("no fake faces")), "{err}");

    let unknown = bare_trainer(&["--fakes", "sbi,gan"], &paths);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{err}");
    assert!(err.contains("gan") && err.contains("reconstruct"), "{err}");
}

/// Settings out of their range are refused before any photo is read, with the range (issue 27,
/// class 4: `--input-size 100000` aborted on a 30 GB allocation, `--lr NaN` trained on).
#[test]
fn settings_out_of_range_are_refused_with_the_range() {
    let tmp = fresh_run_folder("trainer-ranges");
    for (flag, value, range) in [
        ("--lr", "NaN", "from 0.00000001 to 1"),
        ("--lr", "-1", "to 1"),
        ("--input-size", "100000", "from 32 to 1024"),
        ("--input-size", "1", "from 32 to 1024"),
        ("--batch-size", "0", "from 1 to 4096"),
        ("--val-fraction", "2", "from 0 to 0.9"),
        ("--sbi-strength", "NaN", "from 0 to 10"),
        ("--min-score", "NaN", "from 0 to 1"),
        ("--freeze-blocks", "18", "from 0 to 17"),
        ("--xray", "-1", "from 0 to 100"),
    ] {
        let out = bare_trainer(
            &["--sbi", &format!("{flag}={value}")],
            &[("--data", &tmp.join("data")), ("--out", &tmp.join("run"))],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(range), "{flag} {value}: {stderr}");
        assert!(!tmp.join("run").exists(), "{flag} {value}: nothing is written");
    }
}

/// A bare run starts MobileNetV2 from the ImageNet weights in the models folder; without them it
/// fails at start with one line saying how to get them, or how to do without.
#[test]
fn a_bare_run_without_the_imagenet_weights_says_how_to_get_them() {
    let tmp = fresh_run_folder("trainer-no-weights");
    let empty = tmp.join("models");
    std::fs::create_dir_all(&empty).expect("models folder");
    let out = bare_trainer(
        &["--sbi"],
        &[("--data", &tmp.join("data")), ("--out", &tmp.join("run")), ("--models", &empty)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for part in ["mobilenet_v2-b0353104.pth: missing", "models/fetch", "--from-scratch"] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    assert!(!tmp.join("run").exists(), "nothing is written");
}

/// A checkpoint file damaged at rest stops `--resume` with its name (issue 27, class 8: 50
/// flipped bytes in a model resumed silently), and a crop cache that cannot be written fails at
/// start instead of skipping every photo.
#[test]
fn a_damaged_checkpoint_and_an_unwritable_cache_are_refused_by_name() {
    let tmp = fresh_run_folder("trainer-damaged");
    let (data, run) = (tmp.join("data"), tmp.join("run"));
    let args = ["--sbi", "--input-size", "32", "--batch-size", "4", "--epochs", "1"];
    let out =
        bare_trainer(&args, &[("--data", &data), ("--out", &run), ("--cache", &tmp.join("cache"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = run.join("checkpoints/model-1.bpk");
    let mut bytes = std::fs::read(&model).expect("checkpoint");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 50] {
        *b ^= 0x5a;
    }
    std::fs::write(&model, bytes).expect("damage");
    let resumed = bare_trainer(&["--resume", "--epochs", "2"], &[("--out", &run)]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("model-1.bpk") && stderr.contains("damaged"), "{stderr}");

    let not_a_folder = tmp.join("cache-file");
    std::fs::write(&not_a_folder, b"a file").expect("write");
    let out = bare_trainer(
        &args,
        &[("--data", &data), ("--out", &tmp.join("run2")), ("--cache", &not_a_folder)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--cache") && stderr.contains("cache-file"), "{stderr}");
}

/// A run whose loss is not finite stops at the first such batch with one line saying so, and
/// leaves no model behind (issue 27, class 4: a diverged run trained every epoch, then exported
/// a model with `"threshold": null`). NaN weights, through --pretrained, make it diverge at once.
#[test]
fn a_diverging_run_stops_at_once_and_writes_no_model() {
    let tmp = fresh_run_folder("trainer-nan");
    let weights = tmp.join("nan.pth");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torchvision_checkpoint.py");
    let made = Command::new("python3").arg(&script).arg(&weights).arg("--nan").output();
    let made = made.expect("python3 runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let out = tmp.join("run");
    let run = bare_trainer(
        &[
            "--sbi",
            "--backbone",
            "mobilenet-v3-small",
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--val-fraction",
            "0.4",
        ],
        &[
            ("--pretrained", &weights),
            ("--data", &tmp.join("data")),
            ("--out", &out),
            ("--cache", &tmp.join("cache")),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("epoch 1, batch 1: the loss is NaN: training diverged"), "{stderr}");
    for file in ["model.onnx", "model.tflite", "model.json", "metrics.json"] {
        assert!(!out.join(file).exists(), "{file} written by a diverged run");
    }
}
