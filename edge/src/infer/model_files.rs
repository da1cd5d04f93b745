//! The model files `edge` and the trainer look for in the models folder (see models/manifest.tsv).

/// The MediaPipe detectors.
pub const SHORT_RANGE_FILE: &str = "face_detection_short_range.tflite";
pub const FULL_RANGE_FILE: &str = "face_detection_full_range.tflite";
/// The classifier used when `--model` is not given.
pub const DEFAULT_CLASSIFIER_FILE: &str = "classifier.onnx";
