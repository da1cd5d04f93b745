//! deepfake-edge: find faces in an image and classify each as REAL or FAKE, on the CPU, through tract.
//!
//! The library is the one definition of decoding, detection, cropping, preprocessing and
//! classification: the `edge` binary runs it on the board and the trainer runs it on the host, so a
//! face is cut and normalised identically in training and in use.
//!
//! - [`input`]: image files in, decoded and resampled;
//! - [`infer`]: the models through tract, detect → crop → classify;
//! - [`live`]: the real-time loop over a camera or a folder, handing everything to [`live::Sink`]s;
//! - [`sinks`]: the outputs (stdout lines, snapshots, framebuffer, MQTT);
//! - [`service`]: systemd readiness, watchdog and signals;
//! - [`serve`]: `edge serve`, the HTTP API;
//! - [`output`]: files written whole or not at all;
//! - [`range`]: the allowed range of every numeric setting.
//!
//! The `edge` binary's flags, configuration files and printing live in `src/bin/edge/`.

pub mod error;
pub mod geometry;
pub mod infer;
pub mod input;
pub mod live;
pub mod output;
pub mod range;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(feature = "service")]
pub mod service;
pub mod sinks;

pub use geometry::BBox;
pub use infer::classify::{Classifier, Label};
pub use infer::detect::{Detector, DetectorConfig, Face};
pub use infer::pipeline::{FaceReport, ImageReport, Pipeline, Timings};
