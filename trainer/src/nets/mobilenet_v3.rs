//! MobileNetV3-Small (Howard et al., "Searching for MobileNetV3", 2019; the default, the original
//! project's backbone) with a one-logit head scoring FAKE, and the loader of torchvision's ImageNet
//! checkpoint. The layer table is torchvision's, so its weights map onto it.

use super::layers::{Act, ConvBn};
use super::torchvision::Checkpoint;
use anyhow::Result;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{hard_sigmoid, hard_swish, relu};
use std::path::Path;

/// One bottleneck row of the table: kernel, expanded channels, output channels, squeeze-excite,
/// activation, stride.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bneck {
    pub kernel: usize,
    pub expand: usize,
    pub out: usize,
    pub se: bool,
    pub act: Act,
    pub stride: usize,
}

const fn row(kernel: usize, expand: usize, out: usize, se: bool, hs: bool, stride: usize) -> Bneck {
    Bneck { kernel, expand, out, se, act: if hs { Act::HardSwish } else { Act::Relu }, stride }
}

/// torchvision's `mobilenet_v3_small` table (width multiplier 1).
pub const BNECKS: [Bneck; 11] = [
    row(3, 16, 16, true, false, 2),
    row(3, 72, 24, false, false, 2),
    row(3, 88, 24, false, false, 1),
    row(5, 96, 40, true, true, 2),
    row(5, 240, 40, true, true, 1),
    row(5, 240, 40, true, true, 1),
    row(5, 120, 48, true, true, 1),
    row(5, 144, 48, true, true, 1),
    row(5, 288, 96, true, true, 2),
    row(5, 576, 96, true, true, 1),
    row(5, 576, 96, true, true, 1),
];
pub const STEM: usize = 16;
pub const LAST_CONV: usize = 576;
pub const HIDDEN: usize = 1024;
/// Dropout before the output layer, as torchvision's classifier has.
pub const DROPOUT: f64 = 0.2;
/// torchvision's MobileNetV3 batch norms use ε = 0.001, and its ImageNet weights were trained with
/// it. (Its momentum of 0.01 is not copied: with burn's 0.1 the running statistics of a model
/// trained from scratch on a few hundred faces settle within the first epochs.)
pub const BN_EPSILON: f64 = 1e-3;

/// torchvision's `_make_divisible(v, 8)`: `v` rounded to the nearest multiple of 8 (halves up),
/// at least 8, and never more than 10 % below `v`.
pub fn make_divisible(v: f64) -> usize {
    let rounded = (((v + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

/// Squeeze channels: a quarter of the expansion, rounded to a multiple of 8 as torchvision does.
pub fn squeeze_channels(c: usize) -> usize {
    make_divisible((c / 4) as f64)
}

/// The channel counts of MobileNetV3-Small at a width multiplier, as torchvision's
/// `mobilenet_v3_small(width_mult=W)` builds them: every channel count of the table, the stem and
/// the 1024-unit hidden layer become `make_divisible(c·W)`; the last convolution has six times the
/// last block's output channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widths {
    pub stem: usize,
    pub bnecks: Vec<Bneck>,
    pub last_conv: usize,
    pub hidden: usize,
}

impl Widths {
    pub fn new(width: f64) -> Widths {
        let scale = |c: usize| make_divisible(c as f64 * width);
        let bnecks: Vec<Bneck> = BNECKS
            .iter()
            .map(|b| Bneck { expand: scale(b.expand), out: scale(b.out), ..b.clone() })
            .collect();
        let last_in = bnecks.last().map_or(scale(STEM), |b| b.out);
        Widths { stem: scale(STEM), bnecks, last_conv: 6 * last_in, hidden: scale(HIDDEN) }
    }
}

/// Squeeze-excite: channel weights from the global average, through two 1×1 convolutions.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub reduce: Conv2d,
    pub expand: Conv2d,
}

impl SqueezeExcite {
    fn new(c: usize, device: &Device) -> Self {
        let s = squeeze_channels(c);
        SqueezeExcite {
            reduce: Conv2dConfig::new([c, s], [1, 1]).init(device),
            expand: Conv2dConfig::new([s, c], [1, 1]).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let scale = x.clone().mean_dim(3).mean_dim(2);
        let scale = relu(self.reduce.forward(scale));
        // torchvision's hard sigmoid: relu6(x + 3) / 6.
        let scale = hard_sigmoid(self.expand.forward(scale), 1.0 / 6.0, 0.5);
        x * scale
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub se: Option<SqueezeExcite>,
    pub project: ConvBn,
    #[module(skip)]
    pub residual: bool,
}

impl Block {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(expand) = &self.expand {
            y = expand.forward(y);
        }
        y = self.depthwise.forward(y);
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        y = self.project.forward(y);
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

/// MobileNetV3-Small with one output logit (FAKE).
#[derive(Module, Debug)]
pub struct MobileNetV3 {
    pub stem: ConvBn,
    pub blocks: Vec<Block>,
    pub last: ConvBn,
    pub hidden: Linear,
    /// Active only in training (on the autodiff device): `valid()` models and the export skip it.
    pub dropout: Dropout,
    pub head: Linear,
}

impl MobileNetV3 {
    /// Width multiplier 1, the layout torchvision's ImageNet weights have.
    pub fn new(device: &Device) -> Self {
        Self::with_width(1.0, device)
    }

    pub fn with_width(width: f64, device: &Device) -> Self {
        let widths = Widths::new(width);
        let conv_bn = |cin, cout, k, stride, groups, act| {
            ConvBn::new(cin, cout, k, stride, groups, act, device).with_epsilon(BN_EPSILON)
        };
        let stem = conv_bn(3, widths.stem, 3, 2, 1, Act::HardSwish);
        let mut cin = widths.stem;
        let mut blocks = vec![];
        for b in &widths.bnecks {
            blocks.push(Block {
                expand: (b.expand != cin).then(|| conv_bn(cin, b.expand, 1, 1, 1, b.act)),
                depthwise: conv_bn(b.expand, b.expand, b.kernel, b.stride, b.expand, b.act),
                se: b.se.then(|| SqueezeExcite::new(b.expand, device)),
                project: conv_bn(b.expand, b.out, 1, 1, 1, Act::None),
                residual: b.stride == 1 && cin == b.out,
            });
            cin = b.out;
        }
        MobileNetV3 {
            stem,
            blocks,
            last: conv_bn(cin, widths.last_conv, 1, 1, 1, Act::HardSwish),
            hidden: LinearConfig::new(widths.last_conv, widths.hidden).init(device),
            dropout: DropoutConfig::new(DROPOUT).init(),
            head: LinearConfig::new(widths.hidden, 1).init(device),
        }
    }

    /// Logits of FAKE, `[batch]`, for NCHW images normalised as the model's metadata says.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<1> {
        let mut x = self.stem.forward(x);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.last.forward(x);
        let [n, c, _, _] = x.dims();
        let x = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        let x = self.dropout.forward(hard_swish(self.hidden.forward(x)));
        let [n, _] = x.dims();
        self.head.forward(x).reshape([n])
    }
}

/// Loads torchvision's ImageNet weights (`mobilenet_v3_small-047dcff4.pth`) into `model`: every
/// convolution, batch norm and squeeze-excite, and the 1024-unit hidden layer of the classifier
/// (`classifier.0`); the ImageNet output layer (`classifier.3`) is left out and the model keeps its
/// own REAL/FAKE head.
pub fn load_torchvision(model: MobileNetV3, path: &Path, device: &Device) -> Result<MobileNetV3> {
    let mut ck = Checkpoint::open(path)?;
    let mut m = model;
    m.stem = ck.conv_bn(m.stem, "features.0.0", "features.0.1", device)?;
    let mut blocks = vec![];
    for (i, mut b) in m.blocks.into_iter().enumerate() {
        // torchvision's `InvertedResidual.block`, numbered in order: expand (when the expansion
        // changes the width), depthwise, squeeze-excite (where the table has one), project.
        let f = format!("features.{}.block", i + 1);
        let mut at = 0;
        let mut next = || {
            at += 1;
            format!("{f}.{}", at - 1)
        };
        if let Some(expand) = b.expand.take() {
            let p = next();
            b.expand = Some(ck.conv_bn(expand, &format!("{p}.0"), &format!("{p}.1"), device)?);
        }
        let p = next();
        b.depthwise = ck.conv_bn(b.depthwise, &format!("{p}.0"), &format!("{p}.1"), device)?;
        if let Some(mut se) = b.se.take() {
            let p = next();
            se.reduce = ck.conv(se.reduce, &format!("{p}.fc1"), device)?;
            se.expand = ck.conv(se.expand, &format!("{p}.fc2"), device)?;
            b.se = Some(se);
        }
        let p = next();
        b.project = ck.conv_bn(b.project, &format!("{p}.0"), &format!("{p}.1"), device)?;
        blocks.push(b);
    }
    m.blocks = blocks;
    let last = format!("features.{}", BNECKS.len() + 1);
    m.last = ck.conv_bn(m.last, &format!("{last}.0"), &format!("{last}.1"), device)?;
    m.hidden = ck.linear(m.hidden, "classifier.0", device)?;
    ck.finish("classifier.3.")?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_one_is_torchvisions_table() {
        let widths = Widths::new(1.0);
        assert_eq!(widths.bnecks, BNECKS.to_vec());
        assert_eq!((widths.stem, widths.last_conv, widths.hidden), (STEM, LAST_CONV, HIDDEN));
    }

    #[test]
    fn width_three_quarters_rounds_every_channel_count_as_torchvision() {
        // torchvision: [(c.expanded_channels, c.out_channels) for c in
        // _mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.75)[0]], and last_channel 768.
        let widths = Widths::new(0.75);
        let table: Vec<(usize, usize)> = widths.bnecks.iter().map(|b| (b.expand, b.out)).collect();
        assert_eq!(
            table,
            [
                (16, 16),
                (56, 24),
                (64, 24),
                (72, 32),
                (184, 32),
                (184, 32),
                (88, 40),
                (112, 40),
                (216, 72),
                (432, 72),
                (432, 72)
            ]
        );
        assert_eq!((widths.stem, widths.last_conv, widths.hidden), (16, 432, 768));
        // Squeeze-excite widths follow the scaled expansions: 432 / 4 = 108 → 112.
        assert_eq!(squeeze_channels(432), 112);
        assert_eq!(squeeze_channels(88), 24);
        // Kernels, strides, activations and squeeze-excite flags are unchanged.
        for (a, b) in widths.bnecks.iter().zip(&BNECKS) {
            assert_eq!((a.kernel, a.stride, a.act, a.se), (b.kernel, b.stride, b.act, b.se));
        }
    }

    #[test]
    fn make_divisible_matches_torchvision() {
        // _make_divisible(v, 8) for these v.
        for (v, want) in [(12.0, 16), (18.0, 24), (54.0, 56), (66.0, 64), (4.0, 8), (21.6, 24)] {
            assert_eq!(make_divisible(v), want, "{v}");
        }
    }

    #[test]
    fn dropout_acts_in_training_only() {
        let plain = Device::flex();
        plain.seed(7);
        let device = plain.clone().autodiff();
        let model = MobileNetV3::with_width(0.75, &device);
        let x =
            || Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
        plain.seed(8);
        let input = x();
        let values = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().expect("f32");
        // Training: two passes draw two dropout masks (batch norm uses the batch statistics, the
        // same both times).
        let a = values(model.forward(input.clone()));
        let b = values(model.forward(input.clone()));
        assert_ne!(a, b, "dropout made no difference in training");
        // Validation mode, off the autodiff device: deterministic.
        let eval = model.valid();
        let input = Tensor::<4>::from_data(input.into_data(), &plain);
        let c = values(eval.forward(input.clone()));
        assert_eq!(c, values(eval.forward(input)));
    }
}
