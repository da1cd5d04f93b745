//! MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018),
//! torchvision's layout, and the loader of torchvision's ImageNet checkpoint
//! (`mobilenet_v2-b0353104.pth`, the one pretrained start reachable from a package registry).

use super::layers::{Act, ConvBn};
use super::torchvision::Checkpoint;
use anyhow::Result;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use std::path::Path;

/// The file name of torchvision's ImageNet weights, which models/fetch puts in models/.
pub const IMAGENET_WEIGHTS: &str = "mobilenet_v2-b0353104.pth";

/// (expansion t, output channels c, repeats n, first stride s), torchvision's table.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];
const STEM: usize = 32;
pub const FEATURES: usize = 1280;
/// How many inverted-residual blocks follow the stem.
pub const BLOCKS: usize = 17;

#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    #[module(skip)]
    pub residual: bool,
}

impl InvertedResidual {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(expand) = &self.expand {
            y = expand.forward(y);
        }
        y = self.project.forward(self.depthwise.forward(y));
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

/// The 3×3 binomial blur whose difference with the image is the high-pass residual: its weights as
/// a depthwise convolution over the 3 colour channels, `[3, 1, 3, 3]`.
pub fn blur_weights() -> Vec<f32> {
    let row = [1.0, 2.0, 1.0];
    let kernel: Vec<f32> = row.iter().flat_map(|a| row.iter().map(move |b| a * b / 16.0)).collect();
    kernel.repeat(3)
}

/// The image minus its 3×3 binomial blur (zero padding, as ONNX's Conv pads): the fine detail in
/// which up-sampling and reconstruction leave their traces.
pub fn high_pass(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let weight = Tensor::<1>::from_floats(blur_weights().as_slice(), &device).reshape([3, 1, 3, 3]);
    let options = burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 3);
    x.clone() - burn::tensor::module::conv2d(x, weight, None, options)
}

#[derive(Module, Debug)]
pub struct MobileNetV2 {
    pub stem: ConvBn,
    /// A second stem on the high-pass residual of the image (`--high-pass`), added to the stem's
    /// batch-normed output before its activation. Its own batch norm lifts the residual's small
    /// amplitude to the image's; its γ starts at 0, so the network starts as the one it extends.
    pub high_pass: Option<ConvBn>,
    pub blocks: Vec<InvertedResidual>,
    pub last: ConvBn,
    /// `classes` logits (1 for REAL/FAKE; 1000 to check the ImageNet weights).
    pub head: Linear,
}

impl MobileNetV2 {
    /// MobileNetV2 with the high-pass stem, which starts silent (γ 0).
    pub fn with_high_pass(classes: usize, device: &Device) -> Self {
        let mut branch = ConvBn::new(3, STEM, 3, 2, 1, Act::None, device);
        branch.bn.gamma = burn::module::Param::from_tensor(Tensor::zeros([STEM], device));
        MobileNetV2 { high_pass: Some(branch), ..Self::new(classes, device) }
    }

    pub fn new(classes: usize, device: &Device) -> Self {
        let mut blocks = vec![];
        let mut cin = STEM;
        for (t, c, n, s) in SETTINGS {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = cin * t;
                blocks.push(InvertedResidual {
                    expand: (t != 1).then(|| ConvBn::new(cin, hidden, 1, 1, 1, Act::Relu6, device)),
                    depthwise: ConvBn::new(hidden, hidden, 3, stride, hidden, Act::Relu6, device),
                    project: ConvBn::new(hidden, c, 1, 1, 1, Act::None, device),
                    residual: stride == 1 && cin == c,
                });
                cin = c;
            }
        }
        MobileNetV2 {
            stem: ConvBn::new(3, STEM, 3, 2, 1, Act::Relu6, device),
            high_pass: None,
            blocks,
            last: ConvBn::new(cin, FEATURES, 1, 1, 1, Act::Relu6, device),
            head: LinearConfig::new(FEATURES, classes).init(device),
        }
    }

    /// The network with its stem (both stems, with `--high-pass`) and first `blocks` blocks frozen:
    /// their weights and batch-norm statistics stay as they are, so they keep the ImageNet
    /// features they start with.
    pub fn frozen(mut self, blocks: usize) -> Self {
        self.stem = self.stem.freeze();
        self.high_pass = self.high_pass.map(Module::freeze);
        self.blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i < blocks { b.freeze() } else { b })
            .collect();
        self
    }

    /// `[batch, classes]` logits for NCHW images.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = match &self.high_pass {
            None => self.stem.forward(x),
            Some(branch) => {
                let stem = self.stem.bn.forward(self.stem.conv.forward(x.clone()));
                self.stem.act.apply(stem + branch.forward(high_pass(x)))
            }
        };
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.last.forward(x);
        let [n, c, _, _] = x.dims();
        self.head.forward(x.mean_dim(3).mean_dim(2).reshape([n, c]))
    }
}

/// Loads torchvision's ImageNet weights into `model`. The head is loaded too when it has the
/// checkpoint's 1000 classes; otherwise it keeps its fresh initialisation.
pub fn load_torchvision(model: MobileNetV2, path: &Path, device: &Device) -> Result<MobileNetV2> {
    let mut ck = Checkpoint::open(path)?;
    let mut m = model;
    m.stem = ck.conv_bn(m.stem, "features.0.0", "features.0.1", device)?;
    let mut blocks = vec![];
    for (i, mut b) in m.blocks.into_iter().enumerate() {
        let f = format!("features.{}.conv", i + 1);
        // With expansion: 0 expand, 1 depthwise, 2 project conv, 3 its batch norm;
        // without (the first block): 0 depthwise, 1 project conv, 2 its batch norm.
        let at = if let Some(expand) = b.expand.take() {
            b.expand =
                Some(ck.conv_bn(expand, &format!("{f}.0.0"), &format!("{f}.0.1"), device)?);
            1
        } else {
            0
        };
        b.depthwise =
            ck.conv_bn(b.depthwise, &format!("{f}.{at}.0"), &format!("{f}.{at}.1"), device)?;
        b.project =
            ck.conv_bn(b.project, &format!("{f}.{}", at + 1), &format!("{f}.{}", at + 2), device)?;
        blocks.push(b);
    }
    m.blocks = blocks;
    m.last = ck.conv_bn(m.last, "features.18.0", "features.18.1", device)?;
    if m.head.weight.dims() == [FEATURES, 1000] {
        m.head = ck.linear(m.head, "classifier.1", device)?;
    }
    Ok(m)
}
