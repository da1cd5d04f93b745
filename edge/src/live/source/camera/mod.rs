//! The camera: a V4L2 device (`/dev/videoN`) opened through nokhwa, its frames decoded here.
//!
//! nokhwa is used only to enumerate, set the format and dequeue raw buffers (without its
//! `decoding` feature, which builds mozjpeg from C); decoding is in [`convert`] and the choice
//! of mode in [`choose_mode`], both pure and tested without a camera. The V4L2 calls themselves
//! need a device and are exercised only on a board.

pub mod convert;
mod device;

pub use device::{
    choose_mode, device_path, list_cameras, CameraConfig, CameraInfo, CameraMode, CameraSource,
    PixelFormat,
};
