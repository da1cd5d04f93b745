//! The kinds of fake the trainer makes from a real face crop, chosen by name on the command line.

use super::sbi::self_blend;
use super::swap::{face_swap, Donor};
use super::upsample::{upsample_trace, UPSAMPLERS};
use edge::infer::detect::Keypoints;
use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FakeKind {
    /// Self-blended images: blend traces (a boundary, colour and sharpness mismatch).
    Sbi,
    /// The fine detail replaced by a generator-style up-sampling's (nearest + conv, or a
    /// transposed conv, drawn at random), sharpness and content kept.
    Upsample,
    /// Blended images of two people (Face X-ray): another real face's inner face, aligned on the
    /// keypoints and colour-matched, blended in (a face swap's traces, no generator).
    Swap,
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
            FakeKind::Upsample => "upsample",
            FakeKind::Swap => "swap",
        }
    }

    /// One fake of this kind made from a face crop and its keypoints (crop pixels), if known;
    /// `donors` are the other real faces a swap may take from (the face itself is skipped).
    pub fn make(
        self,
        face: &RgbImage,
        keypoints: Option<&Keypoints>,
        donors: &[Donor],
        settings: &FakeSettings,
        rng: &mut impl Rng,
    ) -> RgbImage {
        match self {
            FakeKind::Sbi => self_blend(face, keypoints, settings.sbi_strength, rng),
            FakeKind::Upsample => {
                let upsampler = UPSAMPLERS[rng.random_range(0..UPSAMPLERS.len())];
                upsample_trace(face, upsampler, rng)
            }
            FakeKind::Swap => face_swap(face, keypoints, donors, rng),
        }
    }
}
