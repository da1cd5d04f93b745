//! The trainer learns: from ImageNet-pretrained MobileNetV2, real faces against strongly
//! self-blended fakes, and against reconstructions, scored on faces of photos it never trained on
//! (the split is by photo).

use crate::support::{root, run_folder_with, PHOTOS_WITH_FACES};
use trainer::data::faces::NoFace;
use trainer::fakes::kind::FakeKind;
use trainer::nets::Backbone;
use trainer::run::{run, RunConfig, RunSummary};
use trainer::train::TrainConfig;

/// Trains ImageNet-pretrained MobileNetV2 at 96 px for 8 epochs on the faces of the photos with
/// faces, against fakes of `kind`, and returns the run's summary, the last epoch's validation AUC
/// (on held-out photos: the split is by photo) and the log.
fn train_against(kind: FakeKind, sbi_strength: f32) -> (RunSummary, f64, Vec<String>) {
    let tmp = run_folder_with("trainer-learning", &PHOTOS_WITH_FACES);
    let pretrained = root().join("models/mobilenet_v2-b0353104.pth");
    assert!(pretrained.is_file(), "run models/fetch first");
    let cfg = RunConfig {
        data: vec![tmp.join("data")],
        out: tmp.join("run"),
        detector: root().join("models/face_detection_full_range.tflite"),
        cache: tmp.join("cache"),
        no_face: NoFace::Skip,
        margin: edge::infer::crop::DEFAULT_MARGIN,
        min_score: 0.5,
        val_fraction: 0.3,
        threshold_rule: Default::default(),
        train: TrainConfig {
            input_size: 96,
            backbone: Backbone::MobilenetV2,
            width: 1.0,
            backend: Default::default(),
            device: Default::default(),
            pretrained: Some(pretrained),
            epochs: 8,
            batch_size: 16,
            lr: 3e-4,
            seed: 42,
            fakes: vec![kind],
            high_pass: false,
            freeze_blocks: 0,
            balance_classes: false,
            xray: 0.0,
            sbi_strength,
            augment: true,
        },
    };
    let mut lines = vec![];
    let summary = run(&cfg, |l| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lines.join("\n")));
    let history: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(cfg.out.join("history.json")).expect("history"),
    )
    .expect("JSON");
    let last_auc = history.last().and_then(|h| h["val_auc"].as_f64()).expect("val_auc");
    (summary, last_auc, lines)
}

#[test]
fn pretrained_mobilenet_v2_tells_strong_self_blends_from_real_faces_on_held_out_photos() {
    let (summary, last_auc, lines) = train_against(FakeKind::Sbi, 3.0);
    // Chance is 0.5. The last epoch is not chosen by its validation score, so it is a fair figure.
    assert!(last_auc >= 0.8, "last epoch's held-out AUC {last_auc}:\n{}", lines.join("\n"));
    // The kept epoch is the best, so its AUC is at least the last's (up to the last bit, which
    // serde_json's default float parsing may not give back).
    let best = summary.metrics.auc;
    assert!(best >= last_auc - 1e-12, "kept epoch's AUC {best} against the last's {last_auc}");
    assert!(summary.parity.onnx_max_abs_diff <= 1e-4 && summary.parity.tflite_max_abs_diff <= 1e-4);
}

/// Reconstructions carry no blend and keep their source's sharpness, so what the model learns to
/// tell is the generators' traces; it does so on faces of photos it never trained on.
#[test]
fn pretrained_mobilenet_v2_tells_reconstructions_from_real_faces_on_held_out_photos() {
    let (_, last_auc, lines) = train_against(FakeKind::Reconstruct, 1.0);
    assert!(last_auc >= 0.8, "last epoch's held-out AUC {last_auc}:\n{}", lines.join("\n"));
}
