//! A model of real faces alone, after ZED (Cozzolino, Poggi, Nießner & Verdoliva, "Zero-Shot
//! Detection of AI-Generated Images", ECCV 2024; written from the paper's description, not its
//! code). ZED's lossless coder predicts every pixel of an image from the image at half its
//! resolution, having learnt camera images only; an image whose pixels cost more or less to code
//! than the model itself expects is one unlike those it learnt. No fake is needed.
//!
//! Here a small convolutional predictor, trained on patches of the real faces' brightness, gives
//! a Laplace distribution (centre μ, scale b) for each pixel of level l from level l + 1 (each
//! level the 2×2 mean of the one above) up-sampled. A pixel x costs −ln p(x) = ln 2b + |x − μ|/b
//! nats and the model expects its entropy, ln 2b + 1, so the surprise is |x − μ|/b − 1 (ZED's
//! NLL minus entropy). A face gets the mean surprise and cost of each level; issue 25's probe
//! found the change of the surprise between levels, not the full-resolution one, to separate one
//! generator's faces, and the full-resolution one to track sharpness.

use crate::nets::layers::conv3;
use crate::train::fit::{to_vec, SeededInit};
use anyhow::{ensure, Result};
use burn::nn::conv::Conv2d;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::TensorData;
use image::RgbImage;
use rand::{Rng, SeedableRng};

/// The levels scored: full, half and quarter resolution (each predicted from the next).
pub const LEVELS: usize = 3;
/// Side of the training patches (at their level), and the settings of the optimisation.
const PATCH: usize = 32;
const BATCH: usize = 16;
const LR: f64 = 2e-3;
/// The smallest Laplace scale, in the [−0.5, 0.5] brightness units: a fifth of a grey level, so a
/// flat patch cannot drive the cost to minus infinity.
const MIN_SCALE: f32 = 0.2 / 255.0;
/// Pixels this close to a level's edge are not scored: the convolutions' zero padding.
const BORDER: usize = 3;

/// A brightness plane in [−0.5, 0.5], row by row.
#[derive(Clone, Debug)]
struct Grey {
    w: usize,
    h: usize,
    v: Vec<f32>,
}

impl Grey {
    /// The luma (BT.601) of the image, cut to a multiple of 2^LEVELS on each side so every level
    /// is exactly twice the next.
    fn of(img: &RgbImage) -> Grey {
        let unit = 1 << LEVELS;
        let (w, h) = (img.width() as usize / unit * unit, img.height() as usize / unit * unit);
        let v = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| {
                let p = img.get_pixel(x as u32, y as u32);
                (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
                    / 255.0
                    - 0.5
            })
            .collect();
        Grey { w, h, v }
    }

    /// The 2×2 mean.
    fn half(&self) -> Grey {
        let (w, h) = (self.w / 2, self.h / 2);
        let at = |x: usize, y: usize| self.v[y * self.w + x];
        let v = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| {
                (at(2 * x, 2 * y)
                    + at(2 * x + 1, 2 * y)
                    + at(2 * x, 2 * y + 1)
                    + at(2 * x + 1, 2 * y + 1))
                    / 4.0
            })
            .collect();
        Grey { w, h, v }
    }

    fn crop(&self, x0: usize, y0: usize, side: usize) -> Grey {
        let v = (y0..y0 + side).flat_map(|y| self.v[y * self.w + x0..][..side].to_vec()).collect();
        Grey { w: side, h: side, v }
    }
}

/// Level 0 (the face's brightness) and the LEVELS below it.
fn pyramid(img: &RgbImage) -> Vec<Grey> {
    let mut levels = vec![Grey::of(img)];
    for _ in 0..LEVELS {
        let next = levels[levels.len() - 1].half();
        levels.push(next);
    }
    levels
}

fn batch(planes: &[Grey], device: &Device) -> Tensor<4> {
    let (w, h) = (planes[0].w, planes[0].h);
    let data: Vec<f32> = planes.iter().flat_map(|p| p.v.iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [planes.len(), 1, h, w]), device)
}

/// The pixel predictor: from a level's half (bilinear ×2), each pixel's Laplace centre (an offset
/// from the up-sampled value) and scale.
#[derive(Module, Debug)]
struct Predictor {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    out: Conv2d,
}

impl Predictor {
    fn new(device: &Device) -> Predictor {
        Predictor {
            c1: conv3(1, 32, device),
            c2: conv3(32, 32, device),
            c3: conv3(32, 32, device),
            out: conv3(32, 2, device),
        }
    }

    /// (μ, b) for the level twice the size of `coarse` (N×1×H×W).
    fn forward(&self, coarse: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [n, _, h, w] = coarse.dims();
        let bilinear =
            InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([2 * h, 2 * w]);
        let up = interpolate(coarse, bilinear);
        let x = relu(self.c1.forward(up.clone()));
        let x = relu(self.c2.forward(x));
        let x = relu(self.c3.forward(x));
        let out = self.out.forward(x);
        let mu = up + out.clone().slice([0..n, 0..1, 0..2 * h, 0..2 * w]);
        let b = out.slice([0..n, 1..2, 0..2 * h, 0..2 * w]).exp().clamp_min(MIN_SCALE);
        (mu, b)
    }
}

/// |x − μ|/b and ln 2b per pixel, inside the border.
fn terms(x: Tensor<4>, mu: Tensor<4>, b: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [n, c, h, w] = x.dims();
    let inner = [0..n, 0..c, BORDER..h - BORDER, BORDER..w - BORDER];
    let ratio = ((x - mu).abs() / b.clone()).slice(inner.clone());
    (ratio, (b * 2.0).log().slice(inner))
}

/// How well the predictor learnt: its mean cost per pixel (nats) over the first and the last
/// tenth of the steps.
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    pub first: f32,
    pub last: f32,
}

/// One face's scores per level (index 0: full resolution).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    /// Mean |x − μ|/b − 1: how much more the pixels cost than the model expects.
    pub surprise: [f64; LEVELS],
    /// Mean −ln p(x), nats per pixel.
    pub cost: [f64; LEVELS],
}

/// The predictor, trained.
#[derive(Debug)]
pub struct RealFaceModel {
    net: Predictor,
    device: Device,
}

impl RealFaceModel {
    /// Trains the predictor for `steps` on random patches of `faces` at every level they are
    /// large enough for, its starting weights and patches drawn from `seed`.
    pub fn train(faces: &[&RgbImage], steps: usize, seed: u64) -> Result<(RealFaceModel, Fit)> {
        let pyramids: Vec<Vec<Grey>> = faces.iter().map(|f| pyramid(f)).collect();
        // (face, level) pairs with room for a patch.
        let sources: Vec<(usize, usize)> = (0..pyramids.len())
            .flat_map(|f| (0..LEVELS).map(move |l| (f, l)))
            .filter(|&(f, l)| pyramids[f][l].w.min(pyramids[f][l].h) >= PATCH)
            .collect();
        ensure!(!sources.is_empty(), "no face of at least {PATCH} px to learn from");
        let device = Device::flex();
        let train = device.clone().autodiff();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x2ed);
        let mut net = Predictor::new(&train)
            .map(&mut SeededInit(rand::rngs::StdRng::seed_from_u64(rng.random())));
        let mut optim = burn::optim::AdamConfig::new().init();
        let tenth = (steps / 10).max(1);
        let (mut first, mut last) = (0.0, 0.0);
        for step in 0..steps {
            let (mut fine, mut coarse) = (vec![], vec![]);
            for _ in 0..BATCH {
                let (f, l) = sources[rng.random_range(0..sources.len())];
                let level = &pyramids[f][l];
                // Even corners, so the patch's half is exactly the next level's patch.
                let x0 = 2 * rng.random_range(0..=(level.w - PATCH) / 2);
                let y0 = 2 * rng.random_range(0..=(level.h - PATCH) / 2);
                fine.push(level.crop(x0, y0, PATCH));
                coarse.push(pyramids[f][l + 1].crop(x0 / 2, y0 / 2, PATCH / 2));
            }
            let (mu, b) = net.forward(batch(&coarse, &train));
            let (ratio, log_2b) = terms(batch(&fine, &train), mu, b);
            let loss = (ratio + log_2b).mean();
            let value = to_vec(loss.clone().detach())?[0];
            if step < tenth {
                first += value / tenth as f32;
            }
            if step >= steps - tenth {
                last += value / tenth as f32;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(LR, net, grads);
        }
        Ok((RealFaceModel { net: net.valid(), device }, Fit { first, last }))
    }

    /// The face's surprise and cost at each level. Needs a face of at least 32 px a side, so the
    /// quarter-resolution level has pixels inside its border.
    pub fn score(&self, face: &RgbImage) -> Result<Scores> {
        let levels = pyramid(face);
        let smallest = &levels[LEVELS - 1];
        let least = ((2 * BORDER + 1) << (LEVELS - 1)).next_multiple_of(1 << LEVELS);
        ensure!(
            smallest.w.min(smallest.h) > 2 * BORDER,
            "a {}×{} face is too small to score (at least {least} px a side)",
            face.width(),
            face.height(),
        );
        let mut scores = Scores { surprise: [0.0; LEVELS], cost: [0.0; LEVELS] };
        for l in 0..LEVELS {
            let x = batch(std::slice::from_ref(&levels[l]), &self.device);
            let (mu, b) =
                self.net.forward(batch(std::slice::from_ref(&levels[l + 1]), &self.device));
            let (ratio, log_2b) = terms(x, mu, b);
            let mean = |t: Tensor<4>| -> Result<f64> { Ok(f64::from(to_vec(t.mean())?[0])) };
            scores.surprise[l] = mean(ratio.clone())? - 1.0;
            scores.cost[l] = mean(ratio + log_2b)?;
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(name: &str, side: u32) -> RgbImage {
        let path = testkit::photo(name);
        let img = edge::input::decode::open(&path).expect("decodes");
        crate::data::faces::centre_crop(&img, side)
    }

    /// The predictor learns (its cost falls), the same seed gives the same model, and a face
    /// up-sampled from its half costs less than the model expects against the face itself:
    /// up-sampling makes the fine detail a function of the coarse, which a model of camera
    /// images does not expect.
    #[test]
    fn a_model_of_real_faces_is_surprised_less_by_up_sampled_detail() {
        let faces: Vec<RgbImage> =
            ["lenna.png", "astronaut.png", "tongue.jpg"].map(|n| face(n, 128)).into();
        let refs: Vec<&RgbImage> = faces.iter().collect();
        let (model, fit) = RealFaceModel::train(&refs, 60, 7).expect("trains");
        assert!(fit.last < fit.first - 0.2, "{fit:?}");

        let held_out = face("einstein.jpg", 128);
        let half =
            image::imageops::resize(&held_out, 64, 64, image::imageops::FilterType::Triangle);
        let upsampled =
            image::imageops::resize(&half, 128, 128, image::imageops::FilterType::Triangle);
        let real = model.score(&held_out).expect("scores");
        let (once, _) = RealFaceModel::train(&refs, 3, 7).expect("trains");
        let (again, _) = RealFaceModel::train(&refs, 3, 7).expect("trains");
        assert_eq!(once.score(&held_out).expect("scores"), again.score(&held_out).expect("scores"));
        let made = model.score(&upsampled).expect("scores");
        assert!(made.surprise[0] < real.surprise[0] - 0.1, "{made:?} against {real:?}");
        let err = model.score(&face("lenna.png", 31)).expect_err("too small");
        assert!(err.to_string().contains("at least 32 px"), "{err}");
        assert!(model.score(&face("lenna.png", 32)).is_ok());
    }
}
