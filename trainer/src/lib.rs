//! The deepfake-edge trainer: from folders of real and fake face photos to a verified ONNX and
//! TFLite REAL/FAKE classifier that `edge` runs. Faces are found and cut by the `edge` library, so
//! training sees them exactly as the board will.

pub mod augment;
pub mod checkpoint;
pub mod dataset;
pub mod export;
pub mod faces;
pub mod metrics;
pub mod mobilenet_v2;
pub mod model;
pub mod plot;
pub mod report;
pub mod run;
pub mod sbi;
pub mod torchvision;
pub mod train;
