//! MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018),
//! torchvision's layout, and the loader of torchvision's ImageNet checkpoint
//! (`mobilenet_v2-b0353104.pth`, the one pretrained start reachable from a package registry).

use super::layers::{Act, ConvBn};
use super::torchvision::Checkpoint;
use anyhow::Result;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig};
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
/// The blocks before the X-ray head: through the 96-channel stage, the last at stride 16, where
/// a 160-px crop is a 10×10 map fine enough to place a face's outline and deep enough to have
/// seen it whole.
pub const XRAY_AFTER: usize = 13;
const XRAY_CHANNELS: usize = 96;
/// The X-ray head's output is its convolution's times this gain, which under Adam is that
/// head's learning rate times the gain (fine-tuning's usual ten-fold rate for a new layer): a
/// run on a few dozen faces is a few dozen steps, and at the backbone's rate the head stayed
/// near its start (the leave-one-kind-out splits scored as without it).
const XRAY_GAIN: f32 = 10.0;
/// The X-ray head's starting logit everywhere: p 0.12, near a batch's mean target (blend
/// boundaries cover a part of the blended fakes' maps, and nothing of the others').
pub const XRAY_PRIOR: f32 = -2.0;

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
    /// A training-only head (`--xray`) that maps the features after the first [`XRAY_AFTER`]
    /// blocks (stride 16) to the logits of where a blend boundary lies (Face X-ray); the
    /// classifier does not read it and the export leaves it out.
    pub xray: Option<Conv2d>,
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
            xray: None,
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

    /// The network with the X-ray head (`--xray`), a 1×1 convolution with bias. It starts at
    /// zero weights and the prior's logit: a randomly drawn head's errors would push the backbone
    /// about before the head learns, where a silent one first learns from the features as they
    /// are.
    pub fn with_xray(self, device: &Device) -> Self {
        let mut head = Conv2dConfig::new([XRAY_CHANNELS, 1], [1, 1])
            .with_initializer(Initializer::Zeros)
            .init(device);
        let bias = Tensor::full([1], XRAY_PRIOR / XRAY_GAIN, device);
        head.bias = Some(Param::from_tensor(bias));
        MobileNetV2 { xray: Some(head), ..self }
    }

    /// `[batch, classes]` logits for NCHW images.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with_xray(x).0
    }

    /// The logits, and the X-ray head's `[batch, 1, h, w]` logits when the network has the head.
    pub fn forward_with_xray(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<4>>) {
        let mut x = match &self.high_pass {
            None => self.stem.forward(x),
            Some(branch) => {
                let stem = self.stem.bn.forward(self.stem.conv.forward(x.clone()));
                self.stem.act.apply(stem + branch.forward(high_pass(x)))
            }
        };
        let mut map = None;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if i + 1 == XRAY_AFTER {
                map = self.xray.as_ref().map(|head| head.forward(x.clone()) * XRAY_GAIN);
            }
        }
        let x = self.last.forward(x);
        let [n, c, _, _] = x.dims();
        (self.head.forward(x.mean_dim(3).mean_dim(2).reshape([n, c])), map)
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
