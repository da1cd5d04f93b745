//! deepfake-edge: find faces in an image and classify each as REAL or FAKE, on the CPU, through tract.
//!
//! The library is the one definition of decoding, detection, cropping, preprocessing and
//! classification: the `edge` binary runs it on the board and the trainer runs it on the host, so a
//! face is cut and normalised identically in training and in use.

pub mod anchors;
pub mod annotate;
pub mod bench;
#[cfg(feature = "camera")]
pub mod camera;
pub mod classify;
pub mod cli;
pub mod config;
pub mod crop;
pub mod decode;
pub mod detect;
#[cfg(feature = "display")]
pub mod display;
pub mod events;
pub mod kernels;
pub mod live;
pub mod model;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod nms;
pub mod pipeline;
pub mod resize;
pub mod service;
pub mod source;
pub mod tflite_fp16;
pub mod track;

pub use classify::{Classifier, Label};
pub use detect::{BBox, Detector, DetectorConfig, Face};
pub use pipeline::{FaceReport, ImageReport, Pipeline, Timings};
