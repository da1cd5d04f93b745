//! The classifier network of either backbone, as training, checkpoints and the export see it.

use super::mobilenet_v2::MobileNetV2;
use super::mobilenet_v3::MobileNetV3;
use burn::prelude::*;

/// The backbones the trainer can train.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    MobilenetV3Small,
    MobilenetV2,
}

/// A classifier network of either backbone.
// Both variants are similarly large (~1.5 kB of layer handles) and a run holds a few: no boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    V3(MobileNetV3),
    V2(MobileNetV2),
}

impl Net {
    /// A fresh network; `width` is MobileNetV3-Small's width multiplier and `high_pass`
    /// MobileNetV2's second stem (MobileNetV2 is built at width 1 only, MobileNetV3-Small without
    /// that stem, as `TrainConfig::check` enforces).
    pub fn new(backbone: Backbone, width: f64, high_pass: bool, device: &Device) -> Net {
        match backbone {
            Backbone::MobilenetV3Small => Net::V3(MobileNetV3::with_width(width, device)),
            Backbone::MobilenetV2 if high_pass => Net::V2(MobileNetV2::with_high_pass(1, device)),
            Backbone::MobilenetV2 => Net::V2(MobileNetV2::new(1, device)),
        }
    }

    /// The network with MobileNetV2's stem and first `blocks` blocks frozen
    /// (`MobileNetV2::frozen`); nothing is frozen at 0 (MobileNetV3-Small is never frozen, as
    /// `TrainConfig::check` enforces).
    pub fn frozen(self, blocks: usize) -> Net {
        match self {
            Net::V2(m) if blocks > 0 => Net::V2(m.frozen(blocks)),
            net => net,
        }
    }

    /// The network with MobileNetV2's X-ray head when `xray` says so (`MobileNetV2::with_xray`;
    /// MobileNetV3-Small has none, as `TrainConfig::check` enforces).
    pub fn with_xray(self, xray: bool, device: &Device) -> Net {
        match self {
            Net::V2(m) if xray => Net::V2(m.with_xray(device)),
            net => net,
        }
    }

    /// Logits of FAKE, `[batch]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<1> {
        self.forward_with_xray(x).0
    }

    /// Logits of FAKE, `[batch]`, and the X-ray head's `[batch, 1, h, w]` logits of a blend
    /// boundary when the network has that head.
    pub fn forward_with_xray(&self, x: Tensor<4>) -> (Tensor<1>, Option<Tensor<4>>) {
        match self {
            Net::V3(m) => (m.forward(x), None),
            Net::V2(m) => {
                let (logits, map) = m.forward_with_xray(x);
                let [n, _] = logits.dims();
                (logits.reshape([n]), map)
            }
        }
    }
}
