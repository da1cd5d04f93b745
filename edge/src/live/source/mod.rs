//! Where frames come from: a camera, a folder of images played as frames; and what the real-time
//! loop needs of any of them (keep only the newest frame, reopen a lost source with back-off).
//! The loop sees only [`FrameSource`], so everything but the V4L2 calls is tested without a
//! camera.

#[cfg(feature = "camera")]
pub mod camera;
pub mod folder;
pub mod frame;
pub mod newest;
pub mod reconnecting;

pub use folder::FolderSource;
pub use frame::{Frame, FrameSource, Opener, SourceError, IDLE};
pub use newest::Newest;
pub use reconnecting::{Backoff, Reconnecting};
