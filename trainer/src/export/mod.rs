//! Export of the trained classifier to the two formats `edge` loads, and the check that both give
//! burn's own probabilities.

pub mod onnx;
pub mod tflite;
