//! The deepfake-edge trainer: from folders of real and fake face photos to a verified ONNX and
//! TFLite REAL/FAKE classifier that `edge` runs. Faces are found and cut by the `edge` library, so
//! training sees them exactly as the board will.
//!
//! - [`data`]: the folders, the face crops and their cache, augmentation;
//! - [`fakes`]: fakes made from real faces;
//! - [`nets`]: the MobileNets in burn and torchvision's weights;
//! - [`train`]: settings, backends, the loop, checkpoints;
//! - [`eval`]: metrics, plots, the report;
//! - [`export`]: ONNX and TFLite, checked against burn's own outputs;
//! - [`run`]: one training run, start to finish, and [`resume`] the rules for continuing one;
//! - [`files`]: writing files atomically and naming them by content;
//! - [`zed`]: a model of real faces alone, which scores how unlike them a face is.

pub mod data;
pub mod eval;
pub mod export;
pub mod fakes;
pub mod files;
pub mod nets;
pub mod resume;
pub mod run;
pub mod train;
pub mod zed;
