//! What one training is set to do (saved with the run and its checkpoints), and the statistics
//! each epoch leaves.

use super::backend::{Adapter, Backend};
use crate::fakes::kind::{FakeKind, FakeSettings};
use crate::nets::{mobilenet_v2, Backbone, Net};
use anyhow::{bail, ensure, Result};
use burn::prelude::Device;
use serde::{Deserialize, Serialize};

/// The smallest and largest side of the square crops a network may take: the MobileNets reduce
/// their input 32 times, and above 1024 px one batch outgrows a small machine's memory.
pub const MIN_INPUT: u32 = 32;
pub const MAX_INPUT: u32 = 1024;
/// The largest weight of the X-ray loss (Face X-ray weighs its own 100 times the classifier's).
pub const MAX_XRAY: f32 = 100.0;

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
    /// Kinds of fake made afresh from every real face each epoch, one of each kind per face.
    #[serde(default)]
    pub fakes: Vec<FakeKind>,
    /// MobileNetV2's second stem on the image's high-pass residual (`MobileNetV2::high_pass`).
    #[serde(default)]
    pub high_pass: bool,
    /// MobileNetV2's stem and first blocks (of 17) frozen at their pretrained weights.
    #[serde(default)]
    pub freeze_blocks: usize,
    /// Weigh the loss so the real faces count as much as all the fakes together: several fakes
    /// are made of each real face, and unweighted they push every score towards FAKE.
    #[serde(default)]
    pub balance_classes: bool,
    /// The weight of the Face X-ray loss beside the classifier's (0: no X-ray head): MobileNetV2
    /// also learns to map where the blended kinds' boundary lies (`MobileNetV2::with_xray`).
    /// Saved runs from before the head read as 0.
    #[serde(default)]
    pub xray: f32,
    /// Colour and brightness change of the self-blended fakes (1: the paper's range).
    pub sbi_strength: f32,
    pub augment: bool,
}

fn width_one() -> f64 {
    1.0
}

impl TrainConfig {
    pub fn fake_settings(&self) -> FakeSettings {
        FakeSettings { sbi_strength: self.sbi_strength }
    }

    /// A fresh network of this configuration, without pretrained weights.
    pub fn network(&self, device: &Device) -> Net {
        Net::new(self.backbone, self.width, self.high_pass, device)
            .with_xray(self.xray > 0.0, device)
    }

    /// Refuses settings no network can be built or started with (the command line's parsers
    /// refuse them first; this also covers a saved or hand-made configuration).
    pub fn check(&self) -> Result<()> {
        use edge::range::check;
        let bad = |flag: &str, e: String| anyhow::anyhow!("--{flag} {e}");
        check(self.input_size, MIN_INPUT, MAX_INPUT).map_err(|e| bad("input-size", e))?;
        check(self.batch_size, 1, 4096).map_err(|e| bad("batch-size", e))?;
        check(self.lr, 1e-8, 1.0).map_err(|e| bad("lr", e))?;
        check(self.sbi_strength, 0.0, 10.0).map_err(|e| bad("sbi-strength", e))?;
        check(self.xray, 0.0, MAX_XRAY).map_err(|e| bad("xray", e))?;
        ensure!(
            self.xray == 0.0 || self.backbone == Backbone::MobilenetV2,
            "--xray is for mobilenet-v2 only"
        );
        ensure!(
            self.width.is_finite() && self.width > 0.0,
            "--width {} is not a positive multiplier",
            self.width
        );
        ensure!(
            !self.high_pass || self.backbone == Backbone::MobilenetV2,
            "--high-pass is for mobilenet-v2 only"
        );
        if self.freeze_blocks > 0 {
            ensure!(
                self.backbone == Backbone::MobilenetV2 && self.pretrained.is_some(),
                "--freeze-blocks keeps pretrained mobilenet-v2 blocks: it needs mobilenet-v2 from \
                 --pretrained weights"
            );
            ensure!(
                self.freeze_blocks <= mobilenet_v2::BLOCKS,
                "--freeze-blocks {} is more than mobilenet-v2's {} blocks",
                self.freeze_blocks,
                mobilenet_v2::BLOCKS
            );
        }
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
            fakes: vec![FakeKind::Sbi],
            high_pass: false,
            freeze_blocks: 0,
            balance_classes: false,
            xray: 0.0,
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
        let high_pass = |backbone| TrainConfig { high_pass: true, ..config(backbone, 1.0, None) };
        assert!(high_pass(Backbone::MobilenetV2).check().is_ok());
        let err = high_pass(v3).check().expect_err("refused");
        assert!(err.to_string().contains("--high-pass is for mobilenet-v2 only"), "{err}");
        assert!(config(v3, 0.0, None).check().is_err());
        let v2 = Backbone::MobilenetV2;
        let xray = |w, backbone| TrainConfig { xray: w, ..config(backbone, 1.0, None) };
        assert!(xray(5.0, v2).check().is_ok());
        assert!(xray(0.0, v3).check().is_ok());
        for (cfg, says) in [(xray(5.0, v3), "mobilenet-v2 only"), (xray(-1.0, v2), "-1")] {
            let err = cfg.check().expect_err("refused").to_string();
            assert!(err.contains("--xray") && err.contains(says), "{err}");
        }
        let frozen =
            |n, backbone, start| TrainConfig { freeze_blocks: n, ..config(backbone, 1.0, start) };
        assert!(frozen(17, v2, Some("w.pth")).check().is_ok());
        for (cfg, says) in [
            (frozen(18, v2, Some("w.pth")), "more than mobilenet-v2's 17 blocks"),
            (frozen(3, v2, None), "--pretrained"),
            (frozen(3, v3, Some("w.pth")), "mobilenet-v2"),
        ] {
            let err = cfg.check().expect_err("refused").to_string();
            assert!(err.contains("--freeze-blocks") && err.contains(says), "{err}");
        }
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
