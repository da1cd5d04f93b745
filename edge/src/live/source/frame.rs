//! A frame, and what every source is.

use anyhow::Result;
use image::RgbImage;
use std::time::{Duration, Instant};

/// One captured frame.
pub struct Frame {
    pub image: RgbImage,
    /// Position in the source's sequence (0, 1, 2, …). Gaps are frames the loop never saw.
    pub seq: u64,
    /// When the frame was captured (or read).
    pub captured: Instant,
    /// Where it came from, for reports: a file path, or `camera 0`.
    pub origin: String,
}

/// Why a source gave no frame.
#[derive(Debug)]
pub enum SourceError {
    /// This frame was bad (a corrupt file in a folder, a broken MJPEG frame); the source goes on.
    Frame(anyhow::Error),
    /// The source is gone (camera unplugged); it must be reopened.
    Lost(anyhow::Error),
    /// No frame yet (a camera away, waiting to be reopened); ask again. Sources that wait
    /// return this at least every [`IDLE`], so the loop stays responsive (signals, watchdog).
    Idle,
}

/// The longest a waiting source blocks before returning [`SourceError::Idle`].
pub const IDLE: Duration = Duration::from_secs(1);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Frame(e) => write!(f, "{e:#}"),
            SourceError::Lost(e) => write!(f, "source lost: {e:#}"),
            SourceError::Idle => f.write_str("no frame yet"),
        }
    }
}

impl std::error::Error for SourceError {}

/// A sequence of frames.
pub trait FrameSource: Send {
    /// Blocks until the next frame. `Ok(None)`: the source has ended (the last image of a folder).
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// A short description for logs: `camera 0 (640×480 MJPEG, 30 fps)`, `folder frames/ (300 images)`.
    fn describe(&self) -> String;
}

/// Opens (and, after a loss, reopens) a source.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>> + Send>;
