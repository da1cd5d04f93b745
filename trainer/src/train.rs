//! The training loop: Adam on binary cross-entropy, seeded shuffling, augmentation and
//! self-blended fakes made afresh every epoch, validation and a checkpoint after each epoch, and
//! the epoch with the best validation ROC AUC kept.

use crate::augment::augment;
use crate::checkpoint::{self, Checkpoints};
use crate::metrics;
use crate::model::{Backbone, Net};
use crate::sbi::self_blend;
use anyhow::{anyhow, bail, ensure, Result};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use edge::infer::classify::{normalise, ModelMeta};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::time::Instant;

type Keypoints = [[f32; 2]; edge::infer::detect::KEYPOINTS];

/// A face crop with its label.
#[derive(Clone, Debug)]
pub struct Item {
    pub image: RgbImage,
    pub keypoints: Option<Keypoints>,
    pub fake: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub input_size: u32,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub backbone: Backbone,
    /// MobileNetV3-Small's width multiplier (torchvision's `width_mult`); 1 for MobileNetV2.
    #[serde(default = "width_one")]
    pub width: f64,
    #[serde(default)]
    pub backend: Backend,
    /// The adapter of a GPU backend.
    #[serde(default)]
    pub device: Adapter,
    /// torchvision ImageNet checkpoint to start from, of the backbone's architecture.
    pub pretrained: Option<std::path::PathBuf>,
    /// Add one self-blended fake per real face per epoch.
    pub sbi: bool,
    /// Colour and brightness change of the self-blended fakes (1: the paper's range).
    pub sbi_strength: f32,
    pub augment: bool,
}

fn width_one() -> f64 {
    1.0
}

impl TrainConfig {
    /// Refuses settings no network can be built or started with.
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.width.is_finite() && self.width > 0.0,
            "--width {} is not a positive multiplier",
            self.width
        );
        if self.width != 1.0 {
            ensure!(
                self.backbone == Backbone::MobilenetV3Small,
                "--width {} is for mobilenet-v3-small only; mobilenet-v2 is built at width 1",
                self.width
            );
            if let Some(path) = &self.pretrained {
                bail!(
                    "--pretrained {} holds width-1 weights: it cannot start a --width {} network",
                    path.display(),
                    self.width
                );
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_auc: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

pub struct Trained {
    /// The best epoch's model, in validation mode.
    pub model: Net,
    pub history: Vec<EpochStats>,
    pub best_epoch: usize,
    /// The best model's p(FAKE) on the validation items.
    pub val_p_fake: Vec<f32>,
}

/// A fresh network of the configured backbone, with the pretrained weights when given.
pub fn initial_model(cfg: &TrainConfig, device: &Device) -> Result<Net> {
    let model = Net::new(cfg.backbone, cfg.width, device);
    match (&cfg.pretrained, model) {
        (None, model) => Ok(model),
        (Some(path), Net::V2(m)) => {
            Ok(Net::V2(crate::mobilenet_v2::load_torchvision(m, path, device)?))
        }
        (Some(path), Net::V3(m)) => Ok(Net::V3(crate::model::load_torchvision(m, path, device)?)),
    }
}

/// The model training starts from, on the autodiff `device`: drawn by Flex from the seed whatever
/// the backend, so one seed gives one start on every backend (each backend's own random numbers
/// differ), then moved to `device`.
pub fn starting_model(cfg: &TrainConfig, device: &Device) -> Result<Net> {
    let cpu = Device::flex();
    cpu.seed(cfg.seed);
    let model = initial_model(cfg, &cpu.autodiff())?;
    if cfg.backend == Backend::Flex {
        return Ok(model);
    }
    // burn draws parameters lazily and moving an undrawn one just moves where it will be drawn,
    // so every parameter is drawn here first.
    struct Draw;
    impl burn::module::ModuleVisitor for Draw {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Draw);
    Ok(model.fork(device))
}

/// Binary cross-entropy on logits, averaged: softplus(z) − y·z, written to stay finite.
pub fn bce_with_logits(z: Tensor<1>, y: Tensor<1>) -> Tensor<1> {
    let softplus = z.clone().clamp_min(0.0) + z.clone().abs().neg().exp().add_scalar(1.0).log();
    (softplus - z * y).mean()
}

fn to_vec(t: Tensor<1>) -> Result<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().map_err(|e| anyhow!("tensor data: {e:?}"))
}

/// The NCHW input batch for face crops, normalised as the exported model will be fed.
pub fn batch(images: &[RgbImage], meta: &ModelMeta, device: &Device) -> Tensor<4> {
    let s = images.first().map_or(0, |i| i.width() as usize);
    let mut data = Vec::with_capacity(images.len() * 3 * s * s);
    for img in images {
        normalise(img, meta, true, &mut data);
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 3, s, s]), device)
}

/// The backends the trainer can run on. Every name parses in every build, so that a run folder
/// made by another build still reads; a backend this build lacks fails when its device is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's pure-Rust CPU backend (about 9× faster than NdArray here).
    #[default]
    Flex,
    /// burn's NdArray CPU backend (deprecated by burn; built with `--features ndarray`).
    Ndarray,
    /// burn's wgpu backend: a GPU through Vulkan, Metal or DirectX 12 (built with
    /// `--features wgpu`); `--device` picks the adapter.
    Wgpu,
}

impl Backend {
    /// The device (without autodiff) of this backend; `adapter` picks the GPU of GPU backends.
    pub fn device(self, adapter: Adapter) -> Result<Device> {
        if self != Backend::Wgpu && adapter != Adapter::Default {
            anyhow::bail!("--device {adapter} needs a GPU backend (--backend wgpu)");
        }
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(not(feature = "ndarray"))]
            Backend::Ndarray => anyhow::bail!(
                "this trainer was built without NdArray: rebuild with `--features ndarray`"
            ),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => wgpu_device(adapter),
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => {
                anyhow::bail!("this trainer was built without wgpu: rebuild with `--features wgpu`")
            }
        }
    }
}

/// Which adapter a GPU backend runs on: `default` (wgpu's choice, a high-performance GPU first),
/// `discrete`, `integrated` or `virtual` with an optional `:N` (the N-th adapter of that kind,
/// from 0), or `cpu` (a software adapter such as Mesa's lavapipe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Adapter {
    #[default]
    Default,
    Discrete(usize),
    Integrated(usize),
    Virtual(usize),
    Cpu,
}

impl std::str::FromStr for Adapter {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (kind, index) = match s.split_once(':') {
            Some((kind, n)) => (
                kind,
                Some(n.parse::<usize>().map_err(|_| {
                    anyhow!("adapter `{s}`: `{n}` is not an adapter number (0, 1, …)")
                })?),
            ),
            None => (s, None),
        };
        let n = index.unwrap_or(0);
        match kind {
            "default" if index.is_none() => Ok(Adapter::Default),
            "cpu" if index.is_none() => Ok(Adapter::Cpu),
            "discrete" => Ok(Adapter::Discrete(n)),
            "integrated" => Ok(Adapter::Integrated(n)),
            "virtual" => Ok(Adapter::Virtual(n)),
            _ => anyhow::bail!(
                "adapter `{s}`: expected default, cpu, discrete[:N], integrated[:N] or virtual[:N]"
            ),
        }
    }
}

impl std::fmt::Display for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Adapter::Default => write!(f, "default"),
            Adapter::Cpu => write!(f, "cpu"),
            Adapter::Discrete(n) => write!(f, "discrete:{n}"),
            Adapter::Integrated(n) => write!(f, "integrated:{n}"),
            Adapter::Virtual(n) => write!(f, "virtual:{n}"),
        }
    }
}

impl TryFrom<String> for Adapter {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Adapter> for String {
    fn from(a: Adapter) -> String {
        a.to_string()
    }
}

/// The wgpu device on `adapter`, set up once per process (burn refuses a second set-up of one
/// adapter, so later runs in the same process reuse the first).
#[cfg(feature = "wgpu")]
fn wgpu_device(adapter: Adapter) -> Result<Device> {
    use burn::tensor::DeviceKind;
    use std::sync::Mutex;
    static READY: Mutex<Vec<(Adapter, Device)>> = Mutex::new(Vec::new());
    let mut ready = READY.lock().map_err(|_| anyhow!("wgpu: a set-up panicked earlier"))?;
    if let Some((_, device)) = ready.iter().find(|(a, _)| *a == adapter) {
        return Ok(device.clone());
    }
    let kind = match adapter {
        Adapter::Default => DeviceKind::DefaultDevice,
        Adapter::Cpu => DeviceKind::Cpu,
        Adapter::Discrete(n) => DeviceKind::DiscreteGpu(n),
        Adapter::Integrated(n) => DeviceKind::IntegratedGpu(n),
        Adapter::Virtual(n) => DeviceKind::VirtualGpu(n),
    };
    let device = Device::wgpu_options().device_kind(kind).init().map_err(|e| {
        anyhow!(
            "wgpu: no usable adapter for --device {adapter}: {}",
            e.to_string().replace('\n', " ")
        )
    })?;
    ready.push((adapter, device.clone()));
    Ok(device)
}

/// p(FAKE) of each image, in batches, with the model in validation mode on `device`.
pub fn predict(
    model: &Net,
    images: &[RgbImage],
    meta: &ModelMeta,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let device = device.clone();
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size.max(1)) {
        let logits = model.forward(batch(chunk, meta, &device));
        out.extend(to_vec(burn::tensor::activation::sigmoid(logits))?);
    }
    Ok(out)
}

/// The targets of binary cross-entropy: 1 for FAKE, 0 for REAL.
pub fn labels(fake: &[bool], device: &Device) -> Tensor<1> {
    let y: Vec<f32> = fake.iter().map(|&f| if f { 1.0 } else { 0.0 }).collect();
    Tensor::from_data(TensorData::new(y, [fake.len()]), device)
}

/// One optimisation step on a batch of face crops: the updated model, the batch's mean loss, and
/// how many of its images the model (before the update) classified right.
pub fn step(
    model: Net,
    optim: &mut ModuleOptimizer,
    lr: f64,
    images: &[RgbImage],
    fake: &[bool],
    meta: &ModelMeta,
    device: &Device,
) -> Result<(Net, f64, usize)> {
    let logits = model.forward(batch(images, meta, device));
    let loss = bce_with_logits(logits.clone(), labels(fake, device));
    let z = to_vec(logits.detach())?;
    let correct = z.iter().zip(fake).filter(|(z, f)| (**z >= 0.0) == **f).count();
    let loss_value = to_vec(loss.clone().detach())?[0] as f64;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    Ok((optim.step(lr, model, grads), loss_value, correct))
}

/// The random stream of one epoch (order, self-blends, augmentation): a function of the seed and
/// the epoch alone, so that a resumed run draws exactly what the uninterrupted run drew.
fn epoch_rng(seed: u64, epoch: usize) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Validation loss (mean binary cross-entropy of the probabilities) and the metrics at 0.5.
fn validation_scores(p: &[f32], fake: &[bool]) -> (f64, metrics::Metrics) {
    let loss = p
        .iter()
        .zip(fake)
        .map(|(&p, &f)| -((if f { p } else { 1.0 - p }).clamp(1e-7, 1.0) as f64).ln())
        .sum::<f64>()
        / p.len() as f64;
    (loss, metrics::Metrics::new(p, fake, 0.5))
}

/// Trains on `train`, validating on `val` (which must hold both classes), writing a checkpoint
/// after every epoch when `checkpoints` is given, and continuing from the latest one when it says
/// to resume.
pub fn train(
    train: &[Item],
    val: &[Item],
    cfg: &TrainConfig,
    meta: &ModelMeta,
    checkpoints: Option<&Checkpoints>,
    mut progress: impl FnMut(&EpochStats),
) -> Result<Trained> {
    ensure!(!train.is_empty(), "no training images");
    ensure!(
        val.iter().any(|i| i.fake) && val.iter().any(|i| !i.fake),
        "validation needs both classes"
    );
    let plain = cfg.backend.device(cfg.device)?;
    plain.seed(cfg.seed);
    let device = plain.clone().autodiff();
    // A batch counter, redrawn in place, where a person watches; logs get the epoch lines only.
    let show_batches = std::io::stderr().is_terminal();
    let val_images: Vec<RgbImage> = val.iter().map(|i| i.image.clone()).collect();
    let val_fake: Vec<bool> = val.iter().map(|i| i.fake).collect();

    // (validation AUC, validation loss, epoch, model, validation p(FAKE)) of the best epoch so far.
    let mut best: Option<(f64, f64, usize, Net, Vec<f32>)> = None;
    let (mut model, mut optim, mut history) = match checkpoints.filter(|c| c.resume) {
        Some(c) => {
            let r = c.restore(cfg, &device, &plain)?;
            // Scored again rather than read back, so the comparisons with later epochs see the
            // very numbers the uninterrupted run compared.
            let p = predict(&r.best_model, &val_images, meta, cfg.batch_size, &plain)?;
            let (loss, m) = validation_scores(&p, &val_fake);
            best = Some((m.auc, loss, r.best_epoch, r.best_model, p));
            (r.model, r.optim, r.history)
        }
        None => (starting_model(cfg, &device)?, checkpoint::adam(), vec![]),
    };

    // Each epoch: every item once, plus (with SBI) a fresh self-blended fake of every real face.
    let mut slots: Vec<(usize, bool)> = (0..train.len()).map(|i| (i, false)).collect();
    if cfg.sbi {
        slots.extend((0..train.len()).filter(|&i| !train[i].fake).map(|i| (i, true)));
    }
    for epoch in history.len() + 1..=cfg.epochs {
        let start = Instant::now();
        let mut rng = epoch_rng(cfg.seed, epoch);
        // The backend's own stream (dropout masks) restarts every epoch too, for the same reason.
        plain.seed(epoch_rng(cfg.seed ^ 0xd40f, epoch).next_u64());
        let mut order = slots.clone();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let batches = order.len().div_ceil(cfg.batch_size.max(1));
        for (b, chunk) in order.chunks(cfg.batch_size.max(1)).enumerate() {
            if show_batches {
                eprint!("\repoch {epoch}/{}: batch {}/{batches}", cfg.epochs, b + 1);
            }
            let mut images = Vec::with_capacity(chunk.len());
            let mut fake = Vec::with_capacity(chunk.len());
            for &(i, blended) in chunk {
                let item = &train[i];
                let face = if blended {
                    self_blend(&item.image, item.keypoints.as_ref(), cfg.sbi_strength, &mut rng)
                } else {
                    item.image.clone()
                };
                images.push(if cfg.augment { augment(&face, &mut rng) } else { face });
                fake.push(item.fake || blended);
            }
            let (updated, loss, right) =
                step(model, &mut optim, cfg.lr, &images, &fake, meta, &device)?;
            model = updated;
            loss_sum += loss * chunk.len() as f64;
            correct += right;
        }
        if show_batches {
            eprint!("\r\x1b[2K");
        }
        let seconds = start.elapsed().as_secs_f64();
        let eval = model.valid();
        let p = predict(&eval, &val_images, meta, cfg.batch_size, &plain)?;
        let (val_loss, m) = validation_scores(&p, &val_fake);
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / order.len() as f64,
            train_accuracy: correct as f64 / order.len() as f64,
            val_loss,
            val_accuracy: m.accuracy,
            val_auc: m.auc,
            seconds,
            images_per_second: order.len() as f64 / seconds,
        };
        progress(&stats);
        // Best AUC; among equal AUCs, the lower validation loss.
        if best
            .as_ref()
            .is_none_or(|(auc, loss, ..)| m.auc > *auc || (m.auc == *auc && val_loss < *loss))
        {
            best = Some((m.auc, val_loss, epoch, eval, p));
        }
        history.push(stats);
        if let (Some(c), Some((.., best_epoch, _, _))) = (checkpoints, &best) {
            c.save(cfg, &model, &optim, &history, *best_epoch)?;
        }
    }
    let (_, _, best_epoch, model, val_p_fake) = best.ok_or_else(|| anyhow!("no epoch was run"))?;
    Ok(Trained { model, history, best_epoch, val_p_fake })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backbone: Backbone, width: f64, pretrained: Option<&str>) -> TrainConfig {
        TrainConfig {
            input_size: 64,
            epochs: 1,
            batch_size: 4,
            lr: 1e-3,
            seed: 1,
            backbone,
            width,
            backend: Backend::Flex,
            device: Default::default(),
            pretrained: pretrained.map(Into::into),
            sbi: true,
            sbi_strength: 1.0,
            augment: true,
        }
    }

    #[test]
    fn width_is_checked_against_backbone_and_start() {
        let v3 = Backbone::MobilenetV3Small;
        assert!(config(v3, 0.75, None).check().is_ok());
        assert!(config(v3, 1.0, Some("w.pth")).check().is_ok());
        let err = config(v3, 0.75, Some("w.pth")).check().expect_err("refused").to_string();
        assert!(err.contains("--pretrained w.pth") && err.contains("--width 0.75"), "{err}");
        assert_eq!(err.lines().count(), 1);
        let err = config(Backbone::MobilenetV2, 0.5, None).check().expect_err("refused");
        assert!(err.to_string().contains("mobilenet-v3-small only"), "{err}");
        assert!(config(v3, 0.0, None).check().is_err());
    }

    #[test]
    fn width_is_saved_and_old_configurations_read_as_width_one() {
        let cfg = config(Backbone::MobilenetV3Small, 0.75, None);
        let json = serde_json::to_value(&cfg).expect("JSON");
        assert_eq!(json["width"], 0.75);
        let mut old = json.clone();
        old.as_object_mut().expect("object").remove("width");
        let back: TrainConfig = serde_json::from_value(old).expect("a configuration");
        assert_eq!(back.width, 1.0);
    }
}
