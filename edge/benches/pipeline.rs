//! `cargo bench`: per-stage milliseconds of the pipeline on astronaut.png (one face), with each
//! detector and a MobileNetV3-Small classifier at 224 (the architecture the trainer trains;
//! weights here are random, which does not change its cost). Single-threaded, as tract runs.
//! Run `models/fetch` first.

use edge::infer::bench;
use edge::{Classifier, Detector, DetectorConfig, Pipeline};

fn main() -> anyhow::Result<()> {
    let runs = std::env::var("EDGE_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(100);
    let dir = std::env::temp_dir().join(format!("edge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let classifier_path = dir.join("mobilenet_v3_small_224.onnx");
    std::fs::write(&classifier_path, testkit::mobilenet::onnx(224))?;
    let photo = testkit::photo("astronaut.png");
    for detector in ["face_detection_short_range.tflite", "face_detection_full_range.tflite"] {
        let pipeline = Pipeline {
            detector: Detector::load(&testkit::model(detector), DetectorConfig::default())?,
            classifier: Some(Classifier::load(&classifier_path)?),
            margin: edge::infer::crop::DEFAULT_MARGIN,
            threshold: None,
        };
        let report = bench::run(&pipeline, &photo, runs)?;
        println!("## {detector} + MobileNetV3-Small 224\n\n{}", report.to_markdown());
    }
    Ok(())
}
