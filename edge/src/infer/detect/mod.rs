//! Face detection with MediaPipe BlazeFace: the model and its decoding (`detector`), the SSD
//! anchors it is decoded against, and the weighted NMS that merges its detections.

pub mod anchors;
pub mod detector;
pub mod face;
pub mod nms;

pub use detector::{Detector, DetectorConfig};
pub use face::{Face, Keypoints, KEYPOINTS};
