//! Reconstructions by a small generator trained on the real faces (after Zhang, Karaman & Chang,
//! "Detecting and Simulating Artifacts in GAN Fake Images", WIFS 2019, whose AutoGAN simulates a
//! GAN's up-sampling without a GAN; written from the paper's description, not its code).
//!
//! A generator here is an encoder–decoder: two stride-2 convolutions down to a quarter of the
//! side, one convolution there, and a decoder that up-samples twice as image generators do
//! (transposed convolutions, or nearest up-sampling followed by a convolution), trained for a few
//! hundred steps to reconstruct patches of the real faces. Its reconstruction of a face carries
//! the decoder's traces and the face's content. It is also softer than its source, which would
//! teach "soft = fake" (issue 25's probe), so a fake keeps the source's coarse content and takes
//! only the reconstruction's fine detail, scaled to the source's sharpness
//! ([`super::upsample::with_detail_of`]).
//!
//! The same generators trained as denoisers make the `denoise` kind: they learn to give a patch
//! back from a copy with noise added, and a fake takes the detail of the denoised face with
//! noise. A diffusion model's last steps do this, and the fine detail of their output is drawn by
//! the denoiser, not recorded by a camera (the idea behind DRCT, Chen et al., ICML 2024, which
//! trains on real images reconstructed by a diffusion model, made here without one).

use super::upsample::{with_detail_of, Plane, Upsampler, UPSAMPLERS};
use crate::data::augment::add_noise;
use crate::nets::layers::conv3;
use crate::train::fit::{to_vec, SeededInit};
use anyhow::{anyhow, Context, Result};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::PaddingConfig2d;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::TensorData;
use image::RgbImage;
use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Side of the square patches the generators learn from (a multiple of 4).
const PATCH: u32 = 48;
/// Optimisation steps and patches per step: about 25 s per generator on a busy 2-core machine.
const STEPS: usize = 300;
const BATCH: usize = 8;
const LR: f64 = 2e-3;
/// The Gaussian whose residual is the detail taken from the reconstruction: wider than the
/// `upsample` kind's, as two ×2 steps leave traces down to a period of four pixels.
const DETAIL_SIGMA: f32 = 1.0;
/// Width of the frame around a face while it is reconstructed (see [`Generators::fake`]).
const FRAME: u32 = 8;
/// The noise denoisers take off, in grey levels: from a diffusion model's last steps' (a few
/// levels) to a dark photo's.
const NOISE: std::ops::Range<f32> = 4.0..16.0;

/// What the generators learn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// To reconstruct a patch (the `reconstruct` kind).
    Reconstruct,
    /// To give a patch back from a copy with noise added (the `denoise` kind).
    Denoise,
}

impl Task {
    /// What a generator is given: the patch itself, or the patch with noise drawn from `rng`.
    fn input(self, patch: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        match self {
            Task::Reconstruct => patch.clone(),
            Task::Denoise => add_noise(patch, rng.random_range(NOISE), rng),
        }
    }
}

/// One up-sampling step of the decoder.
#[derive(Module, Debug)]
struct Up {
    /// Kernel 4, stride 2, padding 1 (whose uneven overlap leaves a checkerboard)…
    transposed: Option<ConvTranspose2d>,
    /// …or a 3×3 convolution after nearest-neighbour ×2.
    conv: Option<Conv2d>,
}

impl Up {
    fn new(upsampler: Upsampler, cin: usize, cout: usize, device: &Device) -> Up {
        match upsampler {
            Upsampler::Transposed => Up {
                transposed: Some(
                    ConvTranspose2dConfig::new([cin, cout], [4, 4])
                        .with_stride([2, 2])
                        .with_padding([1, 1])
                        .init(device),
                ),
                conv: None,
            },
            Upsampler::NearestConv => Up { transposed: None, conv: Some(conv3(cin, cout, device)) },
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match (&self.transposed, &self.conv) {
            (Some(t), _) => t.forward(x),
            (None, Some(conv)) => {
                let nearest =
                    InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([2.0, 2.0]);
                conv.forward(interpolate(x, nearest))
            }
            (None, None) => x,
        }
    }
}

/// The encoder–decoder.
#[derive(Module, Debug)]
struct Generator {
    down1: Conv2d,
    down2: Conv2d,
    middle: Conv2d,
    up1: Up,
    up2: Up,
    out: Conv2d,
}

impl Generator {
    fn new(upsampler: Upsampler, device: &Device) -> Generator {
        let down = |cin, cout| {
            Conv2dConfig::new([cin, cout], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Generator {
            down1: down(3, 16),
            down2: down(16, 32),
            middle: conv3(32, 32, device),
            up1: Up::new(upsampler, 32, 16, device),
            up2: Up::new(upsampler, 16, 16, device),
            out: conv3(16, 3, device),
        }
    }

    /// Images in [−0.5, 0.5], sides a multiple of 4, to their reconstructions.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.down1.forward(x));
        let x = relu(self.down2.forward(x));
        let x = relu(self.middle.forward(x));
        let x = relu(self.up1.forward(x));
        let x = relu(self.up2.forward(x));
        self.out.forward(x)
    }
}

/// One trained generator per up-sampler of [`UPSAMPLERS`], all trained for one task.
#[derive(Debug)]
pub struct Generators {
    nets: Vec<Generator>,
    task: Task,
    device: Device,
}

/// Where the generators came from.
#[derive(Clone, Debug)]
pub enum Provenance {
    /// Trained now; `replaced` is why the cached ones could not be read, if there were any.
    Trained { fits: Vec<Fit>, replaced: Option<String> },
    /// Read from this cache folder.
    Cached(PathBuf),
}

/// How well a generator learnt its faces.
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    pub upsampler: Upsampler,
    /// Mean absolute error of the last step's outputs against the clean patches, in grey levels
    /// (0–255).
    pub error: f32,
}

impl Generators {
    /// Trains a generator of each up-sampler for `task` on random patches of `faces` (from
    /// `seed`, so one seed gives the same generators). Faces smaller than a patch are left out.
    /// With a `cache` folder, generators trained before on the same faces, task and seed are read
    /// back from it instead, and new ones are written to it.
    pub fn train(
        task: Task,
        faces: &[&RgbImage],
        seed: u64,
        cache: Option<&Path>,
    ) -> Result<(Generators, Provenance)> {
        Generators::cached_or_trained(task, STEPS, faces, seed, cache)
    }

    fn cached_or_trained(
        task: Task,
        steps: usize,
        faces: &[&RgbImage],
        seed: u64,
        cache: Option<&Path>,
    ) -> Result<(Generators, Provenance)> {
        let faces: Vec<&RgbImage> =
            faces.iter().copied().filter(|f| f.width() >= PATCH && f.height() >= PATCH).collect();
        if faces.is_empty() {
            return Err(anyhow!("no face of at least {PATCH}×{PATCH} pixels to train on"));
        }
        let Some(dir) = cache else {
            let (generators, fits) = Generators::train_for(task, steps, &faces, seed)?;
            return Ok((generators, Provenance::Trained { fits, replaced: None }));
        };
        let key = cache_key(task, steps, &faces, seed);
        let paths: Vec<PathBuf> =
            UPSAMPLERS.iter().map(|u| dir.join(format!("generator-{key}-{u:?}.bpk"))).collect();
        let mut replaced = None;
        if paths.iter().all(|p| p.is_file()) {
            match Generators::read(task, &paths) {
                Ok(generators) => return Ok((generators, Provenance::Cached(dir.to_path_buf()))),
                Err(e) => replaced = Some(format!("{e:#}")),
            }
        }
        let (generators, fits) = Generators::train_for(task, steps, &faces, seed)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (net, path) in generators.nets.iter().zip(&paths) {
            // Written whole under another name first, so a stopped run leaves no half file.
            let part = path.with_extension("part");
            let mut store = BurnpackStore::from_file(&part).auto_extension(false).overwrite(true);
            net.save_into(&mut store)
                .map_err(|e| anyhow!("cannot write {}: {e}", part.display()))?;
            std::fs::rename(&part, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok((generators, Provenance::Trained { fits, replaced }))
    }

    /// The generators written by [`Generators::cached_or_trained`], in [`UPSAMPLERS`] order.
    fn read(task: Task, paths: &[PathBuf]) -> Result<Generators> {
        let device = Device::flex();
        let mut nets = vec![];
        for (upsampler, path) in UPSAMPLERS.into_iter().zip(paths) {
            let mut net = Generator::new(upsampler, &device);
            let mut store = BurnpackStore::from_file(path).auto_extension(false);
            net.load_from(&mut store).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            nets.push(net);
        }
        Ok(Generators { nets, task, device })
    }

    /// Trains the generators for a number of optimisation steps.
    fn train_for(
        task: Task,
        steps: usize,
        faces: &[&RgbImage],
        seed: u64,
    ) -> Result<(Generators, Vec<Fit>)> {
        let device = Device::flex();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7ec0);
        let (mut nets, mut fits) = (vec![], vec![]);
        for upsampler in UPSAMPLERS {
            let train = device.clone().autodiff();
            let net = Generator::new(upsampler, &train);
            let mut net =
                net.map(&mut SeededInit(rand::rngs::StdRng::seed_from_u64(rng.next_u64())));
            let mut optim = burn::optim::AdamConfig::new().init();
            let mut error = f32::NAN;
            for _ in 0..steps {
                let patches: Vec<RgbImage> =
                    (0..BATCH).map(|_| random_patch(faces, &mut rng)).collect();
                let inputs: Vec<RgbImage> =
                    patches.iter().map(|p| task.input(p, &mut rng)).collect();
                let x = tensor(&patches, &train);
                let loss = (net.forward(tensor(&inputs, &train)) - x).abs().mean();
                error = to_vec(loss.clone().detach())?[0] * 255.0;
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(LR, net, grads);
            }
            fits.push(Fit { upsampler, error });
            nets.push(net.valid());
        }
        Ok((Generators { nets, task, device }, fits))
    }

    /// One fake: `face`'s fine detail replaced by that of its reconstruction (or of the denoised
    /// face with noise) by one of the generators, drawn at random.
    pub fn fake(&self, face: &RgbImage, rng: &mut impl Rng) -> Result<RgbImage> {
        let net = &self.nets[rng.random_range(0..self.nets.len())];
        let (w, h) = face.dimensions();
        // The convolutions' zero padding makes the reconstruction's border unlike a generator's
        // output, and its strong detail there would take the sharpness the inside should get: the
        // face is framed by a copy of its edge pixels, to a multiple of 4, and the frame cut off.
        let (pw, ph) = ((w + 2 * FRAME).next_multiple_of(4), (h + 2 * FRAME).next_multiple_of(4));
        let edge = |v: u32, side: u32| v.saturating_sub(FRAME).min(side - 1);
        let framed = RgbImage::from_fn(pw, ph, |x, y| *face.get_pixel(edge(x, w), edge(y, h)));
        let out = net.forward(tensor(&[self.task.input(&framed, rng)], &self.device));
        let v = to_vec(out)?;
        let plane = |c: usize| {
            let at = |x: u32, y: u32| {
                let (x, y) = ((x + FRAME) as usize, (y + FRAME) as usize);
                v[(c * ph as usize + y) * pw as usize + x]
            };
            let values = (0..h).flat_map(|y| (0..w).map(move |x| (at(x, y) + 0.5) * 255.0));
            Plane::new(w, h, values.collect())
        };
        Ok(with_detail_of(face, &[plane(0), plane(1), plane(2)], DETAIL_SIGMA))
    }
}

/// The cache name of the generators `steps` of training on `faces` from `seed` give: a SHA-256 of
/// everything they depend on, the training settings and architecture included.
fn cache_key(task: Task, steps: usize, faces: &[&RgbImage], seed: u64) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("reconstruct 1: {PATCH} {steps} {BATCH} {LR} 3-16-32-32-16-16-3 {seed}"));
    // Reconstruction's key is the one it had before denoisers existed, so their caches stay.
    if task == Task::Denoise {
        hash.update(format!("denoise {NOISE:?}"));
    }
    for face in faces {
        hash.update(face.width().to_le_bytes());
        hash.update(face.height().to_le_bytes());
        hash.update(face.as_raw());
    }
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A random `PATCH`² square of a random face, mirrored half of the time.
fn random_patch(faces: &[&RgbImage], rng: &mut impl Rng) -> RgbImage {
    let face = faces[rng.random_range(0..faces.len())];
    let x0 = rng.random_range(0..=face.width() - PATCH);
    let y0 = rng.random_range(0..=face.height() - PATCH);
    let mirror = rng.random_bool(0.5);
    RgbImage::from_fn(PATCH, PATCH, |x, y| {
        let x = if mirror { PATCH - 1 - x } else { x };
        *face.get_pixel(x0 + x, y0 + y)
    })
}

/// Images of one size as an NCHW batch in [−0.5, 0.5].
fn tensor(images: &[RgbImage], device: &Device) -> Tensor<4> {
    let (w, h) = images[0].dimensions();
    let mut data = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for img in images {
        for c in 0..3 {
            data.extend(img.pixels().map(|p| p[c] as f32 / 255.0 - 0.5));
        }
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 3, h as usize, w as usize]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(name: &str, size: u32) -> RgbImage {
        let img = image::open(testkit::photo(name)).expect("photo").into_rgb8();
        image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle)
    }

    /// One seed gives the same generators, and so the same fakes (a resumed run makes the fakes
    /// the uninterrupted run made); the error falls as they learn, for either task; any size of
    /// face is taken. A cache gives back the generators it was given, keeps reconstructors and
    /// denoisers apart, and replaces a damaged file.
    #[test]
    fn the_same_seed_gives_the_same_fakes_and_learning_lowers_the_error() {
        let faces = [photo("lenna.png", 64), photo("astronaut.png", 64)];
        let refs: Vec<&RgbImage> = faces.iter().collect();
        let train_for = |task, steps, cache| match Generators::cached_or_trained(
            task, steps, &refs, 7, cache,
        ) {
            Ok((g, Provenance::Trained { fits, .. })) => (g, fits),
            other => panic!("{other:?}"),
        };
        let train = |steps, cache| train_for(Task::Reconstruct, steps, cache);
        let face = photo("einstein.jpg", 77);
        let fake = |g: &Generators| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            (0..4).map(|_| g.fake(&face, &mut rng).expect("fake")).collect::<Vec<_>>()
        };
        let mut made = vec![];
        for task in [Task::Reconstruct, Task::Denoise] {
            let (first, fits) = train_for(task, 40, None);
            let (again, _) = train_for(task, 40, None);
            let (short, short_fits) = train_for(task, 5, None);
            for (long, short) in fits.iter().zip(&short_fits) {
                assert!(long.error < short.error, "{task:?}: {long:?} after 40, {short:?} after 5");
            }
            let (a, b) = (fake(&first), fake(&again));
            assert!(a == b, "{task:?}: the same seed made other fakes");
            assert!(a.iter().all(|f| f.dimensions() == (77, 77) && *f != face));
            assert!(fake(&short) != a, "{task:?}: other generators made the same fakes");
            made.push(a);
        }
        assert!(made[0] != made[1], "denoisers made the reconstructions");
        let a = &made[0];

        let s = testkit::Scratch::new("generators");
        let cache = s.join("cache");
        let (trained, _) = train(40, Some(&cache));
        assert!(fake(&trained) == *a, "trained for the cache: other fakes");
        let cached = |task| Generators::cached_or_trained(task, 40, &refs, 7, Some(&cache));
        let read = cached(Task::Reconstruct).expect("read");
        assert!(matches!(read.1, Provenance::Cached(_)), "{:?}", read.1);
        assert!(fake(&read.0) == *a, "read from the cache: other fakes");
        let files: Vec<_> = std::fs::read_dir(&cache).expect("cache").flatten().collect();
        assert_eq!(files.len(), 2, "one file per generator");
        let denoisers = cached(Task::Denoise).expect("trained");
        assert!(
            matches!(denoisers.1, Provenance::Trained { .. }),
            "denoisers read a reconstructor"
        );
        std::fs::write(files[0].path(), b"damaged").expect("damage");
        match cached(Task::Reconstruct) {
            Ok((g, Provenance::Trained { replaced: Some(why), .. })) => {
                assert!(why.contains(".bpk"), "{why}");
                assert!(fake(&g) == *a, "trained again: other fakes");
            }
            other => panic!("{other:?}"),
        }
        let read = cached(Task::Reconstruct).expect("read");
        assert!(matches!(read.1, Provenance::Cached(_)), "the damaged file replaced");
    }
}
