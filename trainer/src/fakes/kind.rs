//! The kinds of fake the trainer makes from a real face crop, chosen by name on the command line.

use super::reconstruct::{Generators, Provenance, Task};
use super::sbi::self_blend_with_mask;
use super::swap::{face_swap_with_mask, Donor};
use super::upsample::{upsample_trace, UPSAMPLERS};
use anyhow::{anyhow, Result};
use edge::infer::detect::Keypoints;
use image::{GrayImage, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

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
    /// The fine detail replaced by that of the face's reconstruction through a small
    /// encoder–decoder trained on the real faces (AutoGAN), sharpness and content kept.
    Reconstruct,
    /// The fine detail replaced by that of the face with noise added, denoised by such an
    /// encoder–decoder trained as a denoiser (a diffusion model's last steps), sharpness and
    /// content kept.
    Denoise,
}

/// The knobs of the kinds.
#[derive(Clone, Copy, Debug)]
pub struct FakeSettings {
    /// `self_blend`'s strength: 1 is the published range.
    pub sbi_strength: f32,
}

impl FakeKind {
    /// The kinds a bare `trainer` makes: all but `denoise`, the set whose classifiers caught a
    /// kind they never saw best (mean left-out ROC AUC in models/LOKO.md; denoised faces, newer,
    /// are caught at 0.98 by these four's models without being trained on).
    pub const DEFAULT: [FakeKind; 4] =
        [FakeKind::Sbi, FakeKind::Upsample, FakeKind::Swap, FakeKind::Reconstruct];

    /// The kinds a run makes: those of `--fakes` (`None` when not given) with sbi added by
    /// `--sbi`, each once in the order given; [`FakeKind::DEFAULT`] when neither is given.
    pub fn chosen(fakes: Option<&[FakeKind]>, sbi: bool) -> Vec<FakeKind> {
        let given = match fakes {
            Some(kinds) => kinds,
            None if sbi => &[],
            None => &FakeKind::DEFAULT,
        };
        let mut kinds = vec![];
        for &kind in given.iter().chain(sbi.then_some(&FakeKind::Sbi)) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds
    }

    /// The name used for folders and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FakeKind::Sbi => "sbi",
            FakeKind::Upsample => "upsample",
            FakeKind::Swap => "swap",
            FakeKind::Reconstruct => "reconstruct",
            FakeKind::Denoise => "denoise",
        }
    }

    /// One fake of this kind made from a face crop and its keypoints (crop pixels), if known,
    /// with what `sources` holds for the kinds that need more than the face.
    pub fn make(
        self,
        face: &RgbImage,
        keypoints: Option<&Keypoints>,
        sources: &Sources,
        settings: &FakeSettings,
        rng: &mut impl Rng,
    ) -> Result<RgbImage> {
        Ok(self.make_with_mask(face, keypoints, sources, settings, rng)?.0)
    }

    /// [`FakeKind::make`]'s fake with, for the blended kinds (sbi, swap), its blend mask: how much
    /// of each pixel came from the other source (255: all of it). The other kinds change the whole
    /// crop and have none. The random stream is drawn from as `make` draws it.
    pub fn make_with_mask(
        self,
        face: &RgbImage,
        keypoints: Option<&Keypoints>,
        sources: &Sources,
        settings: &FakeSettings,
        rng: &mut impl Rng,
    ) -> Result<(RgbImage, Option<GrayImage>)> {
        let blended = |(image, mask)| (image, Some(mask));
        Ok(match self {
            FakeKind::Sbi => {
                blended(self_blend_with_mask(face, keypoints, settings.sbi_strength, rng))
            }
            FakeKind::Upsample => {
                let upsampler = UPSAMPLERS[rng.random_range(0..UPSAMPLERS.len())];
                (upsample_trace(face, upsampler, rng), None)
            }
            FakeKind::Swap => blended(face_swap_with_mask(face, keypoints, &sources.donors, rng)),
            FakeKind::Reconstruct | FakeKind::Denoise => {
                let generators = match self {
                    FakeKind::Denoise => sources.denoisers.as_ref(),
                    _ => sources.generators.as_ref(),
                };
                let generators =
                    generators.ok_or_else(|| anyhow!("{}: no generators trained", self.name()))?;
                (generators.fake(face, rng)?, None)
            }
        })
    }
}

/// The folder inside the crop cache where the reconstructions' generators are kept.
pub const GENERATORS: &str = "generators";

/// What the kinds make fakes from besides the face itself: the other real faces a swap takes
/// from, and the generators reconstructions and denoised faces come from.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    pub donors: Vec<Donor<'a>>,
    pub generators: Option<Arc<Generators>>,
    pub denoisers: Option<Arc<Generators>>,
}

impl<'a> Sources<'a> {
    /// The sources of `kinds` from a set of real faces (and their keypoints): the donors, and,
    /// when reconstructions or denoised faces are asked for, generators trained on the faces
    /// from `seed` (or read from `cache`, where the same faces and seed trained them before);
    /// `log` hears which, and how well they learnt.
    pub fn new(
        kinds: &[FakeKind],
        faces: impl IntoIterator<Item = (&'a RgbImage, Option<&'a Keypoints>)>,
        seed: u64,
        cache: Option<&Path>,
        mut log: impl FnMut(&str),
    ) -> Result<Sources<'a>> {
        let faces: Vec<_> = faces.into_iter().collect();
        let donors = Sources::donors_of(faces.iter().copied());
        let images: Vec<&RgbImage> = faces.iter().map(|f| f.0).collect();
        let mut trained = |kind: FakeKind, task: Task| -> Result<Option<Arc<Generators>>> {
            if !kinds.contains(&kind) {
                return Ok(None);
            }
            let start = std::time::Instant::now();
            let (made, provenance) = Generators::train(task, &images, seed, cache)?;
            let name = kind.name();
            log(&match provenance {
                Provenance::Cached(dir) => {
                    format!(
                        "{name}: generators of these {} faces read from {}",
                        images.len(),
                        dir.display()
                    )
                }
                Provenance::Trained { fits, replaced } => {
                    let errors: Vec<String> =
                        fits.iter().map(|f| format!("{:?} {:.1}", f.upsampler, f.error)).collect();
                    let why = replaced.map(|e| format!("; the cached ones unreadable: {e}"));
                    format!(
                        "{name}: generators trained on {} faces in {:.0} s (mean error in grey \
                         levels: {}){}",
                        images.len(),
                        start.elapsed().as_secs_f64(),
                        errors.join(", "),
                        why.unwrap_or_default()
                    )
                }
            });
            Ok(Some(Arc::new(made)))
        };
        let generators = trained(FakeKind::Reconstruct, Task::Reconstruct)?;
        let denoisers = trained(FakeKind::Denoise, Task::Denoise)?;
        Ok(Sources { donors, generators, denoisers })
    }

    /// The faces with keypoints among `faces`: those a swap may take an inner face from.
    pub fn donors_of(
        faces: impl IntoIterator<Item = (&'a RgbImage, Option<&'a Keypoints>)>,
    ) -> Vec<Donor<'a>> {
        faces
            .into_iter()
            .filter_map(|(image, keypoints)| Some(Donor { image, keypoints: keypoints? }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::FakeKind::{self, *};

    /// A bare run makes the default kinds; `--fakes` replaces them (`none` by nothing); `--sbi`
    /// alone means self-blends only, as it did before the kinds existed, and beside `--fakes` adds
    /// them.
    #[test]
    fn the_kinds_of_a_run() {
        assert_eq!(FakeKind::chosen(None, false), FakeKind::DEFAULT.to_vec());
        assert_eq!(FakeKind::chosen(None, true), vec![Sbi]);
        assert_eq!(FakeKind::chosen(Some(&[]), false), vec![]);
        assert_eq!(FakeKind::chosen(Some(&[]), true), vec![Sbi]);
        assert_eq!(
            FakeKind::chosen(Some(&[Swap, Upsample, Swap]), true),
            vec![Swap, Upsample, Sbi]
        );
    }
}
