//! What the detector finds: a box, a score and BlazeFace's six keypoints.

use crate::geometry::BBox;

/// Number of BlazeFace keypoints: right eye, left eye, nose tip, mouth, right ear, left ear
/// (the subject's right and left).
pub const KEYPOINTS: usize = 6;

/// The keypoints of one face, (x, y) each, in that order.
pub type Keypoints = [[f32; 2]; KEYPOINTS];

/// One detected face, in source image pixels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
    pub keypoints: Keypoints,
}
