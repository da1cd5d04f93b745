//! The training loop: Adam on binary cross-entropy, seeded shuffling, augmentation and
//! self-blended fakes made afresh every epoch, validation and a checkpoint after each epoch, and
//! the epoch with the best validation ROC AUC kept.

use super::backend::Backend;
use super::checkpoint::{self, Checkpoints};
use super::config::{EpochStats, TrainConfig};
use crate::data::augment::augment_with_mask;
use crate::eval::metrics;
use crate::fakes::kind::{FakeKind, Sources};
use crate::nets::{mobilenet_v2, mobilenet_v3, Net};
use anyhow::{anyhow, ensure, Result};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use edge::infer::classify::{normalise, ModelMeta};
use image::{GrayImage, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use std::io::IsTerminal;
use std::time::Instant;

use edge::infer::detect::Keypoints;

/// A face crop with its label.
#[derive(Clone, Debug)]
pub struct Item {
    pub image: RgbImage,
    pub keypoints: Option<Keypoints>,
    pub fake: bool,
}

/// The real faces among `items`, with their keypoints where known.
pub fn real_faces(items: &[Item]) -> impl Iterator<Item = (&RgbImage, Option<&Keypoints>)> {
    items.iter().filter(|i| !i.fake).map(|i| (&i.image, i.keypoints.as_ref()))
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
    let model = Net::new(cfg.backbone, cfg.width, cfg.high_pass, device);
    let model = match (&cfg.pretrained, model) {
        (None, model) => model,
        (Some(path), Net::V2(m)) => Net::V2(mobilenet_v2::load_torchvision(m, path, device)?),
        (Some(path), Net::V3(m)) => Net::V3(mobilenet_v3::load_torchvision(m, path, device)?),
    };
    if cfg.xray == 0.0 {
        return Ok(model);
    }
    // The classifier is drawn before the X-ray head, so a seed starts it as it starts it without
    // the head, and the two runs differ by the X-ray loss alone.
    model.visit(&mut Draw);
    Ok(model.with_xray(true, device))
}

/// Draws every parameter of a module: burn draws them lazily, when first used.
struct Draw;

impl burn::module::ModuleVisitor for Draw {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
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
    // Moving an undrawn parameter just moves where it will be drawn, so every one is drawn first.
    model.visit(&mut Draw);
    Ok(model.fork(device))
}

/// Binary cross-entropy on logits, averaged: softplus(z) − y·z, written to stay finite.
pub fn bce_with_logits(z: Tensor<1>, y: Tensor<1>) -> Tensor<1> {
    bce_terms(z, y).mean()
}

/// Each item's binary cross-entropy times its weight `w`, averaged over the items.
pub fn weighted_bce_with_logits(z: Tensor<1>, y: Tensor<1>, w: Tensor<1>) -> Tensor<1> {
    (bce_terms(z, y) * w).mean()
}

fn bce_terms(z: Tensor<1>, y: Tensor<1>) -> Tensor<1> {
    let softplus = z.clone().clamp_min(0.0) + z.clone().abs().neg().exp().add_scalar(1.0).log();
    softplus - z * y
}

/// The loss weight of a real and of a fake image when each class is to weigh half of an epoch's
/// loss, `real` and `fake` being the epoch's counts; the mean weight over the epoch stays 1, so
/// the learning rate means what it meant unweighted. 1 and 1 when a class is absent.
pub fn balanced_weights(real: usize, fake: usize) -> [f32; 2] {
    if real == 0 || fake == 0 {
        return [1.0, 1.0];
    }
    let n = (real + fake) as f32;
    [n / (2.0 * real as f32), n / (2.0 * fake as f32)]
}

/// A tensor's values as f32.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().map_err(|e| anyhow!("tensor data: {e:?}"))
}

/// Draws a module's starting weights from a stream of its own (PyTorch's default for a
/// convolution: uniform within ±1/√fan-in, the fan-in read from the weight's shape as PyTorch
/// reads it; biases 0). burn's own draws come from one stream per backend and process, which
/// other trainings in the process (tests on parallel threads) draw from too.
pub(crate) struct SeededInit(pub rand::rngs::StdRng);

impl burn::module::ModuleMapper for SeededInit {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        param.map(|t| {
            let dims = t.dims();
            let fan_in: usize = dims.iter().skip(1).product();
            let bound = if D > 1 { 1.0 / (fan_in.max(1) as f32).sqrt() } else { 0.0 };
            let v: Vec<f32> = (0..dims.iter().product())
                .map(|_| self.0.random_range(-1.0..=1.0) * bound)
                .collect();
            let grad = t.is_require_grad();
            Tensor::from_data(TensorData::new(v, dims.to_vec()), &t.device()).set_require_grad(grad)
        })
    }
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

/// A blend mask's Face X-ray target on an `h`×`w` map of the crop: each cell's mean of
/// 4·m·(1−m), m being how much of a pixel came from the other source, which is 1 on the blend
/// boundary and 0 wherever a pixel has one source. Zero everywhere without a mask (a real face,
/// or a fake that changed the whole crop).
pub fn xray_target(mask: Option<&GrayImage>, h: usize, w: usize) -> Vec<f32> {
    let Some(mask) = mask else {
        return vec![0.0; h * w];
    };
    let (mw, mh) = (mask.width() as usize, mask.height() as usize);
    let span = |i: usize, cells: usize, size: usize| {
        let start = i * size / cells;
        start..((i + 1) * size / cells).max(start + 1).min(size)
    };
    let mut out = Vec::with_capacity(h * w);
    for i in 0..h {
        for j in 0..w {
            let (rows, cols) = (span(i, h, mh), span(j, w, mw));
            let mut sum = 0.0f32;
            for y in rows.clone() {
                for x in cols.clone() {
                    let m = mask.get_pixel(x as u32, y as u32)[0] as f32 / 255.0;
                    sum += 4.0 * m * (1.0 - m);
                }
            }
            out.push(sum / (rows.len() * cols.len()).max(1) as f32);
        }
    }
    out
}

/// The Face X-ray targets of a batch, one blend mask (or none) per image, and the weight of their
/// loss beside the classifier's.
#[derive(Clone, Copy)]
pub struct Xray<'a> {
    pub masks: &'a [Option<GrayImage>],
    /// Whether each image's boundary is known: not for the data folders' own fakes, which may
    /// hold a blend no mask records, so they are left out of the X-ray loss.
    pub known: &'a [bool],
    pub weight: f32,
}

/// The loss weights of a real and of a fake image in training on `train` with `cfg`.
pub fn class_weights(train: &[Item], cfg: &TrainConfig) -> [f32; 2] {
    if !cfg.balance_classes {
        return [1.0, 1.0];
    }
    let real = train.iter().filter(|i| !i.fake).count();
    // Each epoch makes one fake of each kind per real face.
    balanced_weights(real, train.len() - real + real * cfg.fakes.len())
}

/// One optimisation step on a batch of face crops, a real image's loss weighed `weight[0]` and a
/// fake's `weight[1]`, plus the X-ray loss when `xray` is given and the model has the head: the
/// updated model, the batch's mean loss, and how many of its images the model (before the
/// update) classified right.
#[allow(clippy::too_many_arguments)]
pub fn step(
    model: Net,
    optim: &mut ModuleOptimizer,
    lr: f64,
    images: &[RgbImage],
    fake: &[bool],
    weight: [f32; 2],
    xray: Option<Xray>,
    meta: &ModelMeta,
    device: &Device,
) -> Result<(Net, f64, usize)> {
    let (logits, map) = model.forward_with_xray(batch(images, meta, device));
    let w: Vec<f32> = fake.iter().map(|&f| weight[usize::from(f)]).collect();
    let w = Tensor::from_data(TensorData::new(w, [fake.len()]), device);
    let mut loss = weighted_bce_with_logits(logits.clone(), labels(fake, device), w);
    if let (Some(map), Some(xray)) = (map, xray) {
        let [n, _, h, w] = map.dims();
        ensure!(
            xray.masks.len() == n && xray.known.len() == n,
            "{} X-ray masks and {} known boundaries for {n} images",
            xray.masks.len(),
            xray.known.len()
        );
        let known = xray.known.iter().filter(|&&k| k).count();
        if known > 0 {
            let target: Vec<f32> =
                xray.masks.iter().flat_map(|m| xray_target(m.as_ref(), h, w)).collect();
            let cells: Vec<f32> =
                xray.known.iter().flat_map(|&k| vec![f32::from(u8::from(k)); h * w]).collect();
            let target = Tensor::from_data(TensorData::new(target, [n * h * w]), device);
            let cells = Tensor::from_data(TensorData::new(cells, [n * h * w]), device);
            // The mean over the known images' cells alone, so unknown ones do not dilute it.
            let scale = xray.weight * n as f32 / known as f32;
            let map = map.reshape([n * h * w]);
            loss = loss + weighted_bce_with_logits(map, target, cells).mul_scalar(scale);
        }
    }
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

/// An epoch's validation figures: the loss (mean binary cross-entropy of the probabilities), the
/// accuracy at 0.5 and the ROC AUC. The full metrics, with the AUC's bootstrap interval, are
/// computed once, for the kept epoch (`run`).
struct Validation {
    loss: f64,
    accuracy: f64,
    auc: f64,
}

fn validation_scores(p: &[f32], fake: &[bool]) -> Validation {
    let loss = p
        .iter()
        .zip(fake)
        .map(|(&p, &f)| -((if f { p } else { 1.0 - p }).clamp(1e-7, 1.0) as f64).ln())
        .sum::<f64>()
        / p.len() as f64;
    let accuracy = metrics::Confusion::at(p, fake, 0.5).accuracy();
    Validation { loss, accuracy, auc: metrics::auc(p, fake) }
}

/// Trains on `train` (with fakes of `cfg.fakes` made from its real faces and `sources`),
/// validating on `val` (which must hold both classes), writing a checkpoint
/// after every epoch when `checkpoints` is given, and continuing from the latest one when it says
/// to resume.
pub fn train(
    train: &[Item],
    val: &[Item],
    cfg: &TrainConfig,
    meta: &ModelMeta,
    sources: &Sources,
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
    let (model, mut optim, mut history) = match checkpoints.filter(|c| c.resume) {
        Some(c) => {
            let r = c.restore(cfg, &device, &plain)?;
            // Scored again rather than read back, so the comparisons with later epochs see the
            // very numbers the uninterrupted run compared.
            let p = predict(&r.best_model, &val_images, meta, cfg.batch_size, &plain)?;
            let v = validation_scores(&p, &val_fake);
            best = Some((v.auc, v.loss, r.best_epoch, r.best_model, p));
            (r.model, r.optim, r.history)
        }
        None => (starting_model(cfg, &device)?, checkpoint::adam(), vec![]),
    };
    // Whether a parameter trains is not saved with it, so a resumed model is frozen again too.
    let mut model = model.frozen(cfg.freeze_blocks);

    // Each epoch: every item once, plus a fresh fake of each chosen kind of every real face.
    let mut slots: Vec<(usize, Option<FakeKind>)> = (0..train.len()).map(|i| (i, None)).collect();
    for &kind in &cfg.fakes {
        slots.extend((0..train.len()).filter(|&i| !train[i].fake).map(|i| (i, Some(kind))));
    }
    let weight = class_weights(train, cfg);
    let settings = cfg.fake_settings();
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
            let mut masks = Vec::with_capacity(chunk.len());
            let mut known = Vec::with_capacity(chunk.len());
            let mut fake = Vec::with_capacity(chunk.len());
            for &(i, made) in chunk {
                let item = &train[i];
                let (face, mask) = match made {
                    Some(kind) => {
                        let k = item.keypoints.as_ref();
                        kind.make_with_mask(&item.image, k, sources, &settings, &mut rng)?
                    }
                    None => (item.image.clone(), None),
                };
                // Only the X-ray head reads the masks; without it they are not carried along.
                let mask = mask.filter(|_| cfg.xray > 0.0);
                let (face, mask) = if cfg.augment {
                    augment_with_mask(&face, mask.as_ref(), &mut rng)
                } else {
                    (face, mask)
                };
                images.push(face);
                masks.push(mask);
                known.push(made.is_some() || !item.fake);
                fake.push(item.fake || made.is_some());
            }
            let xray =
                (cfg.xray > 0.0).then_some(Xray { masks: &masks, known: &known, weight: cfg.xray });
            let (updated, loss, right) =
                step(model, &mut optim, cfg.lr, &images, &fake, weight, xray, meta, &device)?;
            // A diverged run would train every epoch on NaN weights and export a model without a
            // threshold; it stops here, before anything of this epoch is written.
            ensure!(
                loss.is_finite(),
                "epoch {epoch}, batch {}: the loss is {loss}: training diverged (try a lower --lr)",
                b + 1
            );
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
        let v = validation_scores(&p, &val_fake);
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / order.len() as f64,
            train_accuracy: correct as f64 / order.len() as f64,
            val_loss: v.loss,
            val_accuracy: v.accuracy,
            val_auc: v.auc,
            seconds,
            images_per_second: order.len() as f64 / seconds,
        };
        progress(&stats);
        // Best AUC; among equal AUCs, the lower validation loss.
        if best
            .as_ref()
            .is_none_or(|(auc, loss, ..)| v.auc > *auc || (v.auc == *auc && v.loss < *loss))
        {
            best = Some((v.auc, v.loss, epoch, eval, p));
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

    #[test]
    fn balanced_classes_weigh_half_the_loss_each_and_keep_the_mean_weight() {
        let [real, fake] = balanced_weights(21, 84);
        assert!((real * 21.0 - fake * 84.0).abs() < 1e-4, "{real} x 21 against {fake} x 84");
        assert!(((real * 21.0 + fake * 84.0) / 105.0 - 1.0).abs() < 1e-6);
        assert_eq!(balanced_weights(10, 10), [1.0, 1.0]);
        assert_eq!(balanced_weights(0, 7), [1.0, 1.0]);
    }

    /// One step of Adam on a network with its stem and first 3 blocks frozen: their weights and
    /// batch-norm statistics stay; the fourth block's weights move.
    #[test]
    fn frozen_blocks_keep_their_weights_and_statistics_through_a_step() {
        use crate::nets::mobilenet_v2::MobileNetV2;
        let device = Device::flex().autodiff();
        let net = Net::V2(MobileNetV2::new(1, &device)).frozen(3);
        let values = |net: &Net| -> Vec<Vec<f32>> {
            let Net::V2(m) = net else { unreachable!("built as V2") };
            let weight = |c: &crate::nets::layers::ConvBn| c.conv.weight.val().into_data();
            [
                weight(&m.stem),
                m.stem.bn.running_mean.value().into_data(),
                weight(&m.blocks[2].project),
                m.blocks[2].project.bn.running_var.value().into_data(),
                weight(&m.blocks[3].project),
            ]
            .into_iter()
            .map(|d| d.try_to_vec::<f32>().expect("f32"))
            .collect()
        };
        let before = values(&net);
        let meta = crate::run::model_meta();
        let images: Vec<RgbImage> = (0..4u8)
            .map(|i| {
                RgbImage::from_fn(32, 32, |x, y| image::Rgb([i * 60, (x * 8) as u8, (y * 8) as u8]))
            })
            .collect();
        let fake = [false, true, false, true];
        let mut optim = super::checkpoint::adam();
        let (net, ..) =
            step(net, &mut optim, 1e-2, &images, &fake, [1.0, 1.0], None, &meta, &device)
                .expect("a step");
        let after = values(&net);
        for (i, what) in
            ["stem weights", "stem running mean", "block 3 weights", "block 3 variance"]
                .iter()
                .enumerate()
        {
            assert_eq!(before[i], after[i], "{what} moved");
        }
        assert_ne!(before[4], after[4], "block 4's weights did not train");
    }

    /// The X-ray target of a real self-blend: high where the mask's soft edge crosses the face's
    /// outline, zero in the corners (one source) and without a mask.
    #[test]
    fn the_xray_target_lies_on_the_blend_boundary() {
        let photo = image::open(testkit::photo("lenna.png")).expect("lenna.png").into_rgb8();
        let face = image::imageops::resize(&photo, 160, 160, image::imageops::FilterType::Triangle);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (_, mask) = crate::fakes::sbi::self_blend_with_mask(&face, None, 1.0, &mut rng);
        let target = xray_target(Some(&mask), 10, 10);
        let at = |i: usize, j: usize| target[i * 10 + j];
        assert!([at(0, 0), at(9, 9), at(0, 9)].iter().all(|&t| t < 0.01), "{target:?}");
        let peak = target.iter().cloned().fold(0.0, f32::max);
        assert!(peak > 0.2, "{target:?}");
        // The boundary's cells: partly blended, unlike the corners.
        assert!(target.iter().filter(|&&t| t > 0.1).count() >= 8, "{target:?}");
        assert_eq!(xray_target(None, 4, 3), vec![0.0; 12]);
    }

    /// A step with X-ray targets trains the head; the classifier's logits are the same whether the
    /// head is there or not.
    #[test]
    fn the_xray_head_trains_on_known_boundaries_and_leaves_the_logits_alone() {
        use crate::nets::mobilenet_v2::MobileNetV2;
        let device = Device::flex().autodiff();
        let net = Net::V2(MobileNetV2::new(1, &device).with_xray(&device));
        let images: Vec<RgbImage> = (0..4u8)
            .map(|i| RgbImage::from_fn(64, 64, |x, y| image::Rgb([i * 60, (x * 4) as u8, y as u8])))
            .collect();
        let meta = crate::run::model_meta();
        let x = batch(&images, &meta, &device);
        let (logits, map) = net.forward_with_xray(x.clone());
        // Cloned once drawn (by that forward), so the copy without the head has the same weights.
        let Net::V2(m) = &net else { unreachable!("built as V2") };
        let plain = Net::V2(MobileNetV2 { xray: None, ..m.clone() });
        assert_eq!(to_vec(logits).expect("logits"), to_vec(plain.forward(x)).expect("logits"));
        let map = map.expect("the head's map");
        assert_eq!(map.dims(), [4, 1, 4, 4]);
        // A fresh head is silent: the prior everywhere, whatever the features.
        let prior = crate::nets::mobilenet_v2::XRAY_PRIOR;
        assert!(to_vec(map).expect("map").iter().all(|&v| (v - prior).abs() < 1e-5));

        let head = |net: &Net| {
            let Net::V2(m) = net else { unreachable!("built as V2") };
            let conv = m.xray.as_ref().expect("the head");
            conv.weight.val().into_data().try_to_vec::<f32>().expect("f32")
        };
        let before = head(&net);
        let masks = [None, Some(GrayImage::from_pixel(64, 64, image::Luma([128]))), None, None];
        let fake = [false, true, false, true];
        let mut optim = super::checkpoint::adam();
        // Images whose boundary is unknown (the data folders' own fakes) teach the head nothing.
        let unknown = Some(Xray { masks: &masks, known: &[false; 4], weight: 1.0 });
        let (net, ..) =
            step(net, &mut optim, 1e-2, &images, &fake, [1.0, 1.0], unknown, &meta, &device)
                .expect("a step");
        assert_eq!(head(&net), before, "the head trained on unknown boundaries");
        let xray = Some(Xray { masks: &masks, known: &[true, true, false, true], weight: 1.0 });
        let (net, ..) =
            step(net, &mut optim, 1e-2, &images, &fake, [1.0, 1.0], xray, &meta, &device)
                .expect("a step");
        assert_ne!(head(&net), before, "the head did not train");
    }

    #[test]
    fn the_weighted_loss_is_the_weighted_mean_of_each_items_loss() {
        let device = Device::flex();
        let z = Tensor::<1>::from_data(TensorData::new(vec![2.0f32, -1.0, 0.5], [3]), &device);
        let y = labels(&[true, false, false], &device);
        let w = Tensor::<1>::from_data(TensorData::new(vec![0.5f32, 2.0, 0.5], [3]), &device);
        let terms: Vec<f32> = [(2.0f32, 1.0f32), (-1.0, 0.0), (0.5, 0.0)]
            .iter()
            .map(|&(z, y)| (1.0 + z.exp()).ln() - z * y)
            .collect();
        let want = (0.5 * terms[0] + 2.0 * terms[1] + 0.5 * terms[2]) / 3.0;
        let got = to_vec(weighted_bce_with_logits(z.clone(), y.clone(), w)).expect("loss")[0];
        assert!((got - want).abs() < 1e-6, "{got} against {want}");
        let plain = to_vec(bce_with_logits(z, y)).expect("loss")[0];
        assert!((plain - terms.iter().sum::<f32>() / 3.0).abs() < 1e-6);
    }
}
