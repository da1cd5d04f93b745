//! The classifier in both formats the project ships: the same network as ONNX and as TFLite (the
//! TFLite written by tract from the ONNX, its metadata in a sidecar) gives the same p(FAKE) on
//! real face crops, and both agree with a plain Rust computation of the network.

use edge::infer::classify::{sidecar_path, Classifier};
use edge::infer::crop;
use edge::input::decode;
use edge::{Detector, DetectorConfig};
use testkit::{model, photo, Scratch, TestNet};
use tract_onnx::prelude::*;

#[test]
fn onnx_and_tflite_give_the_same_p_fake_on_real_faces() {
    let dir = Scratch::new("formats");
    let net = TestNet::new(96);
    let onnx_path = net.write_onnx(&dir);

    let typed = tract_onnx::onnx()
        .model_for_path(&onnx_path)
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .expect("ONNX loads in tract");
    let tflite_path = dir.join("classifier.tflite");
    let mut bytes = vec![];
    tract_tflite::tflite().write(&typed, &mut bytes).expect("tract writes TFLite");
    std::fs::write(&tflite_path, bytes).expect("write");
    std::fs::write(sidecar_path(&tflite_path), net.meta_json()).expect("write sidecar");

    let onnx = Classifier::load(&onnx_path).expect("ONNX classifier loads");
    let tflite = Classifier::load(&tflite_path).expect("TFLite classifier loads");
    assert_eq!((onnx.input_size(), tflite.input_size()), (96, 96));
    assert_eq!(onnx.meta, tflite.meta);

    let detector =
        Detector::load(&model("face_detection_full_range.tflite"), DetectorConfig::default())
            .expect("detector loads");
    let mut crops = vec![];
    for file in ["astronaut.png", "t1.jpg"] {
        let img = decode::open(&photo(file)).expect("decodes");
        for face in detector.detect(&img).expect("detects") {
            crops.push(crop::face(&img, &face.bbox, crop::DEFAULT_MARGIN, 96));
        }
    }
    assert_eq!(crops.len(), 7);
    let mut spread = (f32::MAX, f32::MIN);
    for crop in &crops {
        let reference = net.reference_p_fake(crop);
        let a = onnx.p_fake(crop).expect("ONNX runs");
        let b = tflite.p_fake(crop).expect("TFLite runs");
        assert!((a - reference).abs() < 1e-4, "ONNX {a} vs reference {reference}");
        assert!((a - b).abs() < 1e-5, "ONNX {a} vs TFLite {b}");
        spread = (spread.0.min(a), spread.1.max(a));
    }
    // The faces really are told apart: p(FAKE) is not one constant.
    assert!(spread.1 - spread.0 > 0.01, "p_fake barely varies: {spread:?}");
}

#[test]
fn a_symbolic_batch_dimension_is_bound_to_one() {
    let dir = Scratch::new("batch");
    let net = TestNet::new(64);
    let (fixed, symbolic) = (dir.join("fixed.onnx"), dir.join("symbolic.onnx"));
    std::fs::write(&fixed, net.onnx()).expect("write");
    std::fs::write(&symbolic, net.onnx_symbolic_batch()).expect("write");
    let fixed = Classifier::load(&fixed).expect("fixed batch loads");
    let symbolic = Classifier::load(&symbolic).expect("symbolic batch loads");
    let img = decode::open(&photo("astronaut.png")).expect("decodes");
    let face = crop::face(&img, &edge::BBox { x0: 174.0, y0: 70.0, x1: 279.0, y1: 175.0 }, 0.3, 64);
    let (a, b) = (fixed.p_fake(&face).expect("runs"), symbolic.p_fake(&face).expect("runs"));
    assert_eq!(a, b);
    assert!((a - net.reference_p_fake(&face)).abs() < 1e-4);
}

#[test]
fn mobilenet_v3_small_as_written_for_the_benchmarks_loads_and_runs() {
    let dir = Scratch::new("mobilenet");
    let path = dir.join("mobilenet_v3_small.onnx");
    std::fs::write(&path, testkit::mobilenet::onnx(224)).expect("write");
    let classifier = Classifier::load(&path).expect("MobileNetV3-Small loads");
    assert_eq!(classifier.input_size(), 224);
    let img = decode::open(&photo("astronaut.png")).expect("decodes");
    let face = edge::BBox { x0: 174.0, y0: 70.0, x1: 279.0, y1: 175.0 };
    let p = classifier.p_fake(&crop::face(&img, &face, crop::DEFAULT_MARGIN, 224)).expect("runs");
    assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{p}");
}

#[test]
fn a_model_with_the_wrong_output_fails_at_load_naming_it() {
    // The short-range BlazeFace file takes a square RGB image, so only its output (896 anchors of
    // 16 coordinates) tells it from a classifier; the check reads the optimised model's facts.
    let dir = Scratch::new("wrong-output");
    let path = dir.write(
        "blazeface.tflite",
        std::fs::read(model("face_detection_short_range.tflite")).expect("detector file"),
    );
    std::fs::write(sidecar_path(&path), testkit::meta_json()).expect("write sidecar");
    let err = Classifier::load(&path).err().expect("a detector is not a classifier");
    let text = format!("{err:#}");
    assert!(text.contains("blazeface.tflite"), "{text}");
    assert!(text.contains("14336 values per image; expected 1 or 2"), "{text}");
}
