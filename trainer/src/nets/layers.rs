//! The layers both backbones are built of, as torchvision builds them: a convolution with its
//! batch norm and activation.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{hard_swish, relu, relu6};

/// The activation after a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Relu6,
    HardSwish,
}

impl Act {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::None => x,
            Act::Relu => relu(x),
            Act::Relu6 => relu6(x),
            Act::HardSwish => hard_swish(x),
        }
    }
}

/// Convolution (no bias), batch norm, activation.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    #[module(skip)]
    pub act: Act,
}

impl ConvBn {
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        act: Act,
        device: &Device,
    ) -> Self {
        let p = k / 2;
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_groups(groups)
            .with_bias(false)
            // He initialisation keeps the activations' variance near 1 through the depth, so the
            // batch norms' initial running statistics (0, 1) already fit: with burn's default
            // (PyTorch's Kaiming-uniform with gain 1/√3) the signal shrinks at every layer and a
            // briefly trained model predicts one constant in validation mode.
            .with_initializer(Initializer::KaimingNormal { gain: 2f64.sqrt(), fan_out_only: false })
            .init(device);
        ConvBn { conv, bn: BatchNormConfig::new(cout).init(device), act }
    }

    /// The batch norm's ε (burn's default 1e-5 is torchvision's for MobileNetV2).
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.bn.epsilon = epsilon;
        self
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.act.apply(self.bn.forward(self.conv.forward(x)))
    }
}

/// A 3×3 convolution with bias that keeps the size (padding 1): the small nets of the fakes and
/// of the real-face model are built of them.
pub fn conv3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}
