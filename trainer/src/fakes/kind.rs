//! The kinds of fake the trainer makes from a real face crop, chosen by name on the command line.

use super::sbi::self_blend;
use crate::data::faces::FaceCrop;
use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FakeKind {
    /// Self-blended images: blend traces (a boundary, colour and sharpness mismatch).
    Sbi,
}

/// The knobs of the kinds.
#[derive(Clone, Copy, Debug)]
pub struct FakeSettings {
    /// `self_blend`'s strength: 1 is the published range.
    pub sbi_strength: f32,
}

impl FakeKind {
    /// The name used for folders and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FakeKind::Sbi => "sbi",
        }
    }

    /// One fake of this kind made from `face`.
    pub fn make(self, face: &FaceCrop, settings: &FakeSettings, rng: &mut impl Rng) -> RgbImage {
        match self {
            FakeKind::Sbi => {
                self_blend(&face.image, face.keypoints.as_ref(), settings.sbi_strength, rng)
            }
        }
    }
}
