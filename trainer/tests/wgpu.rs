//! The wgpu backend (`--features wgpu`) against Flex: the same start, the same loss, gradients of
//! the same direction in every layer and the same loss after an Adam step; and a tiny run of the real binary on wgpu whose exports pass the parity check,
//! resumed across backends. Here it runs on whatever adapter wgpu picks by default: a GPU where
//! there is one, else a software one such as Mesa's lavapipe (package mesa-vulkan-drivers).
#![cfg(feature = "wgpu")]

use crate::support::{bare_trainer, fresh_run_folder, photo};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use image::RgbImage;
use trainer::nets::Backbone;
use trainer::train::fit::{batch, bce_with_logits, labels, starting_model};
use trainer::train::{Adapter, Backend, TrainConfig};

fn config(backend: Backend) -> TrainConfig {
    TrainConfig {
        input_size: 64,
        epochs: 1,
        batch_size: 4,
        lr: 3e-3,
        seed: 42,
        // MobileNetV2 (from scratch): MobileNetV3-Small's dropout draws its masks from each
        // backend's own random stream, which would make the losses differ for that reason alone.
        backbone: Backbone::MobilenetV2,
        width: 1.0,
        backend,
        device: Adapter::Default,
        pretrained: None,
        fakes: vec![],
        high_pass: false,
        freeze_blocks: 0,
        balance_classes: false,
        xray: 0.0,
        sbi_strength: 1.0,
        augment: false,
    }
}

/// A plain gradient step: the loss after it follows the gradient linearly (Adam's first step is
/// about lr × sign(gradient), so that elements at rounding level would move as far as any).
const SGD_LR: f64 = 0.05;

/// What one training step computes on a backend: the loss, every parameter's gradient (flattened,
/// in the model's order) and the loss on the same batch after one Adam step.
struct FirstStep {
    loss: f64,
    grads: Vec<Vec<f32>>,
    loss_after: f64,
}

fn first_step(backend: Backend, images: &[RgbImage], fake: &[bool]) -> FirstStep {
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1.push(g.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32"));
            }
        }
    }
    let meta = trainer::run::model_meta();
    let cfg = config(backend);
    let device = backend.device(cfg.device).unwrap_or_else(|e| panic!("{e:#}")).autodiff();
    let model = starting_model(&cfg, &device).expect("starting model");
    let loss_of = |model: &trainer::nets::Net| {
        bce_with_logits(model.forward(batch(images, &meta, &device)), labels(fake, &device))
    };
    let value = |loss: Tensor<1>| f64::from(loss.into_data().try_to_vec::<f32>().expect("f32")[0]);
    let loss = loss_of(&model);
    let loss_value = value(loss.clone());
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut collect = Collect(&grads, vec![]);
    model.visit(&mut collect);
    let flat = collect.1;
    let mut optim = SgdConfig::new().init();
    let model = optim.step(SGD_LR, model, grads);
    FirstStep { loss: loss_value, grads: flat, loss_after: value(loss_of(&model)) }
}

/// Cosine of the angle between two vectors, and the ratio of their lengths (b over a).
fn cosine_and_ratio(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    (ab / (aa * bb).sqrt(), (bb / aa).sqrt())
}

#[test]
fn wgpu_computes_the_gradients_flex_computes() {
    let images: Vec<RgbImage> = ["lenna.png", "einstein.jpg", "astronaut.png", "tongue.jpg"]
        .iter()
        .map(|name| {
            let img = image::open(photo(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            image::imageops::resize(&img.to_rgb8(), 64, 64, image::imageops::FilterType::Triangle)
        })
        .collect();
    let fake = [false, true, false, true];
    let flex = first_step(Backend::Flex, &images, &fake);
    let wgpu = first_step(Backend::Wgpu, &images, &fake);
    eprintln!(
        "losses: Flex {} → {}, wgpu {} → {}",
        flex.loss, flex.loss_after, wgpu.loss, wgpu.loss_after
    );
    // The same start (drawn by Flex from the seed) gives the same loss up to rounding.
    assert!((flex.loss - wgpu.loss).abs() < 1e-4, "first loss {} vs {}", flex.loss, wgpu.loss);

    // Element by element the gradients cannot be compared: summation order differs, batch norm
    // over 4 images of 2×2 pixels in the last stages amplifies it (the backends' activations there
    // differ by up to 5e-4), and a few activations that sit that close to ReLU6's 0 or 6 take the
    // other side of the kink on the other backend. Such a flip moves single elements of a layer's
    // gradient by 10 % of the layer's largest (measured on lavapipe); the direction of every
    // layer's gradient stays put (cosine 0.9998 at worst). A wrong kernel turns a whole layer.
    assert_eq!(flex.grads.len(), wgpu.grads.len());
    let all = |g: &[Vec<f32>]| g.concat();
    let (cosine, ratio) = cosine_and_ratio(&all(&flex.grads), &all(&wgpu.grads));
    assert!(
        cosine > 0.9999 && (ratio - 1.0).abs() < 0.01,
        "whole gradient: cos {cosine}, ratio {ratio}"
    );
    let total: f64 = flex.grads.iter().flatten().map(|&g| f64::from(g).powi(2)).sum();
    let mut compared = 0;
    for (i, (a, b)) in flex.grads.iter().zip(&wgpu.grads).enumerate() {
        let own: f64 = a.iter().map(|&g| f64::from(g).powi(2)).sum();
        // Parameters whose gradient is at rounding level (batch-norm scales before a batch norm)
        // have no direction to compare.
        if own < 1e-8 * total {
            continue;
        }
        compared += 1;
        let (cosine, _) = cosine_and_ratio(a, b);
        let apart = a.iter().zip(b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt();
        let apart = apart / own.sqrt();
        assert!(cosine > 0.999 && apart < 0.1, "parameter {i}: cos {cosine}, |Δ| {apart} of |g|");
    }
    assert!(compared > 100, "only {compared} parameters compared");
    // And a plain gradient step lowers the loss alike (on lavapipe by 0.0493 and 0.0478).
    let (fell, fell_wgpu) = (flex.loss - flex.loss_after, wgpu.loss - wgpu.loss_after);
    assert!(fell > 1e-2, "the step did not move: {} → {}", flex.loss, flex.loss_after);
    assert!(
        (fell - fell_wgpu).abs() < 0.1 * fell,
        "the loss fell by {fell} on Flex and {fell_wgpu} on wgpu"
    );
}

#[test]
fn a_tiny_run_on_wgpu_exports_models_that_pass_the_parity_check_and_resumes_on_flex() {
    let tmp = fresh_run_folder("trainer-wgpu");
    let (data, cache, run) = (tmp.join("data"), tmp.join("cache"), tmp.join("run"));
    let settings = ["--sbi", "--input-size", "32", "--batch-size", "4", "--val-fraction", "0.4"];
    let args: Vec<&str> = settings
        .iter()
        .chain(&["--epochs", "1", "--lr", "3e-3", "--backend", "wgpu"])
        .copied()
        .collect();
    let out = bare_trainer(&args, &[("--data", &data), ("--cache", &cache), ("--out", &run)]);
    let log = String::from_utf8_lossy(&out.stderr);
    // The run fails when an export differs from burn's probabilities by more than 1e-4.
    assert!(out.status.success(), "{log}");
    assert!(log.contains("largest |p(FAKE) difference| to burn"), "{log}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).expect("config.json"))
            .expect("JSON");
    assert_eq!(config["train"]["backend"], "wgpu", "{config}");
    assert_eq!(config["train"]["device"], "default", "{config}");

    // The checkpoint made on wgpu continues on Flex.
    let resumed =
        bare_trainer(&["--resume", "--epochs", "2", "--backend", "flex"], &[("--out", &run)]);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("epoch 2/2") && !log.contains("epoch 1/2"), "{log}");
    let history: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("history.json")).expect("history.json"))
            .expect("JSON");
    assert_eq!(history.len(), 2);
}
