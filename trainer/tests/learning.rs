//! The trainer learns: from ImageNet-pretrained MobileNetV2, real faces against strongly
//! self-blended fakes, scored on faces of photos it never trained on (the split is by photo).

use crate::support::{root, run_folder_with, PHOTOS_WITH_FACES};
use trainer::data::faces::NoFace;
use trainer::nets::Backbone;
use trainer::run::{run, RunConfig};
use trainer::train::TrainConfig;

#[test]
fn pretrained_mobilenet_v2_tells_strong_self_blends_from_real_faces_on_held_out_photos() {
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
            fakes: vec![trainer::fakes::kind::FakeKind::Sbi],
            sbi_strength: 3.0,
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
    // Chance is 0.5. The last epoch is not chosen by its validation score, so it is a fair figure.
    assert!(last_auc >= 0.8, "last epoch's held-out AUC {last_auc}:\n{}", lines.join("\n"));
    // The kept epoch is the best, so its AUC is at least the last's (up to the last bit, which
    // serde_json's default float parsing may not give back).
    let best = summary.metrics.auc;
    assert!(best >= last_auc - 1e-12, "kept epoch's AUC {best} against the last's {last_auc}");
    assert!(summary.parity.onnx_max_abs_diff <= 1e-4 && summary.parity.tflite_max_abs_diff <= 1e-4);
}
