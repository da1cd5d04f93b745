//! Export of the trained classifier to the two formats `edge` loads, and the check that both give
//! burn's own probabilities (`parity`).

pub mod onnx;
pub mod parity;
pub mod tflite;
