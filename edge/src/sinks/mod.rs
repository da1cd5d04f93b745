//! The outputs of `edge`, each a [`crate::live::Sink`] of the live loop: `lines` (stdout and
//! stderr), `snapshots`, the framebuffer `display`, and `mqtt`; and the drawing they share
//! (`annotate`, also used for `edge --file --annotate` and the trainer's plots).

pub mod annotate;
#[cfg(feature = "display")]
pub mod display;
pub mod lines;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod snapshots;
