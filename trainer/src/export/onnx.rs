//! The trained model as ONNX, written directly with tract-onnx's protobuf types: batch norm folded
//! into the convolutions, the same operators as the burn graph (Conv, Relu, HardSwish,
//! HardSigmoid, Mul, Add, GlobalAveragePool, Gemm, Sigmoid), a symbolic batch dimension `N`, and
//! the model metadata in `metadata_props` under `edge::infer::classify::META_KEY`.

use crate::nets::layers::{Act, ConvBn};
use crate::nets::mobilenet_v2::{self, MobileNetV2};
use crate::nets::mobilenet_v3::MobileNetV3;
use crate::nets::Net;
use anyhow::{anyhow, Result};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use edge::infer::classify::ModelMeta;
use edge::infer::onnx::{float, int, ints, node, tensor, value_info, Dim};
use tract_onnx::pb;

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().map_err(|e| anyhow!("tensor data: {e:?}"))
}

struct Graph {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    count: usize,
}

impl Graph {
    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    fn scalar(&mut self, v: f32) -> String {
        self.init(&[], vec![v])
    }

    fn init(&mut self, dims: &[usize], data: Vec<f32>) -> String {
        let name = self.name("w");
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.inits.push(tensor(&name, &dims, &data));
        name
    }

    fn op(&mut self, op: &str, inputs: &[&str], attribute: Vec<pb::AttributeProto>) -> String {
        let out = self.name(&op.to_lowercase());
        self.nodes.push(node(op, inputs, &out, attribute));
        out
    }

    /// A Conv node with the given (already folded) weight and bias.
    fn conv(&mut self, x: &str, conv: &Conv2d, weight: Vec<f32>, bias: Vec<f32>) -> String {
        self.conv_with(x, conv.weight.dims(), weight, bias, conv.stride, conv.groups)
    }

    /// A Conv node of `dims` (out, in per group, kh, kw), padded by half the kernel.
    fn conv_with(
        &mut self,
        x: &str,
        dims: [usize; 4],
        weight: Vec<f32>,
        bias: Vec<f32>,
        stride: [usize; 2],
        groups: usize,
    ) -> String {
        let w = self.init(&dims, weight);
        let b = self.init(&[dims[0]], bias);
        let [kh, kw] = [dims[2] as i64, dims[3] as i64];
        let [sh, sw] = stride.map(|s| s as i64);
        let (ph, pw) = (kh / 2, kw / 2);
        self.op(
            "Conv",
            &[x, &w, &b],
            vec![
                ints("kernel_shape", &[kh, kw]),
                ints("strides", &[sh, sw]),
                ints("pads", &[ph, pw, ph, pw]),
                int("group", groups as i64),
            ],
        )
    }

    /// Conv + batch norm, folded, then the activation.
    fn conv_bn(&mut self, x: &str, layer: &ConvBn) -> Result<String> {
        let y = self.conv_bn_linear(x, layer)?;
        Ok(self.act(&y, layer.act))
    }

    fn act(&mut self, y: &str, act: Act) -> String {
        match act {
            Act::None => y.to_string(),
            Act::Relu => self.op("Relu", &[y], vec![]),
            Act::Relu6 => {
                let (lo, hi) = (self.scalar(0.0), self.scalar(6.0));
                self.op("Clip", &[y, &lo, &hi], vec![])
            }
            Act::HardSwish => self.op("HardSwish", &[y], vec![]),
        }
    }

    /// Conv + batch norm, folded: w·γ/√(σ²+ε) and β − μ·γ/√(σ²+ε); no activation.
    fn conv_bn_linear(&mut self, x: &str, layer: &ConvBn) -> Result<String> {
        let gamma = values(layer.bn.gamma.val())?;
        let beta = values(layer.bn.beta.val())?;
        let mean = values(layer.bn.running_mean.value())?;
        let var = values(layer.bn.running_var.value())?;
        let scale: Vec<f32> =
            gamma.iter().zip(&var).map(|(g, v)| g / (v + layer.bn.epsilon as f32).sqrt()).collect();
        let mut weight = values(layer.conv.weight.val())?;
        let per_out = weight.len() / scale.len();
        for (o, chunk) in weight.chunks_mut(per_out).enumerate() {
            chunk.iter_mut().for_each(|w| *w *= scale[o]);
        }
        let bias: Vec<f32> = (0..scale.len()).map(|o| beta[o] - mean[o] * scale[o]).collect();
        Ok(self.conv(x, &layer.conv, weight, bias))
    }

    fn conv_with_bias(&mut self, x: &str, conv: &Conv2d) -> Result<String> {
        let weight = values(conv.weight.val())?;
        let bias = match &conv.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; conv.weight.dims()[0]],
        };
        Ok(self.conv(x, conv, weight, bias))
    }

    fn gemm(&mut self, x: &str, linear: &burn::nn::Linear) -> Result<String> {
        // burn's Linear weight is [in, out]: Gemm's B without transposition.
        let w = self.init(&linear.weight.dims(), values(linear.weight.val())?);
        let out = linear.weight.dims()[1];
        let bias = match &linear.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; out],
        };
        let b = self.init(&[out], bias);
        Ok(self.op("Gemm", &[x, &w, &b], vec![]))
    }
}

/// The serialised ONNX model: input `image` N×3×S×S, output `p_fake` N×1 (a probability).
pub fn write(model: &Net, input_size: u32, meta: &ModelMeta) -> Result<Vec<u8>> {
    let mut g = Graph { nodes: vec![], inits: vec![], count: 0 };
    let logit = match model {
        Net::V3(m) => v3(&mut g, m)?,
        Net::V2(m) => v2(&mut g, m)?,
    };
    finish(g, logit, input_size, meta)
}

fn v2(g: &mut Graph, model: &MobileNetV2) -> Result<String> {
    let mut x = match &model.high_pass {
        None => g.conv_bn("image", &model.stem)?,
        Some(branch) => {
            // The image minus its blur (`mobilenet_v2::high_pass`), through the second stem.
            let weights = mobilenet_v2::blur_weights();
            let blur = g.conv_with("image", [3, 1, 3, 3], weights, vec![0.0; 3], [1, 1], 3);
            let residual = g.op("Sub", &["image", &blur], vec![]);
            let branch = g.conv_bn_linear(&residual, branch)?;
            let stem = g.conv_bn_linear("image", &model.stem)?;
            let sum = g.op("Add", &[&stem, &branch], vec![]);
            g.act(&sum, model.stem.act)
        }
    };
    for block in &model.blocks {
        let input = x.clone();
        if let Some(expand) = &block.expand {
            x = g.conv_bn(&x, expand)?;
        }
        x = g.conv_bn(&x, &block.depthwise)?;
        x = g.conv_bn(&x, &block.project)?;
        if block.residual {
            x = g.op("Add", &[&x, &input], vec![]);
        }
    }
    x = g.conv_bn(&x, &model.last)?;
    x = g.op("GlobalAveragePool", &[&x], vec![]);
    x = g.op("Flatten", &[&x], vec![]);
    g.gemm(&x, &model.head)
}

fn v3(g: &mut Graph, model: &MobileNetV3) -> Result<String> {
    let mut x = g.conv_bn("image", &model.stem)?;
    for block in &model.blocks {
        let input = x.clone();
        if let Some(expand) = &block.expand {
            x = g.conv_bn(&x, expand)?;
        }
        x = g.conv_bn(&x, &block.depthwise)?;
        if let Some(se) = &block.se {
            let s = g.op("GlobalAveragePool", &[&x], vec![]);
            let s = g.conv_with_bias(&s, &se.reduce)?;
            let s = g.op("Relu", &[&s], vec![]);
            let s = g.conv_with_bias(&s, &se.expand)?;
            let s = g.op("HardSigmoid", &[&s], vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)]);
            x = g.op("Mul", &[&x, &s], vec![]);
        }
        x = g.conv_bn(&x, &block.project)?;
        if block.residual {
            x = g.op("Add", &[&x, &input], vec![]);
        }
    }
    x = g.conv_bn(&x, &model.last)?;
    x = g.op("GlobalAveragePool", &[&x], vec![]);
    x = g.op("Flatten", &[&x], vec![]);
    x = g.gemm(&x, &model.hidden)?;
    x = g.op("HardSwish", &[&x], vec![]);
    g.gemm(&x, &model.head)
}

fn finish(mut g: Graph, logit: String, input_size: u32, meta: &ModelMeta) -> Result<Vec<u8>> {
    g.nodes.push(node("Sigmoid", &[&logit], "p_fake", vec![]));
    let s = input_size as i64;
    let batch = Dim::DimParam("N".into());
    let graph = pb::GraphProto {
        name: "deepfake_edge_mobilenet_v3_small".into(),
        node: g.nodes,
        initializer: g.inits,
        input: vec![value_info(
            "image",
            &[batch.clone(), Dim::DimValue(3), Dim::DimValue(s), Dim::DimValue(s)],
        )],
        output: vec![value_info("p_fake", &[batch, Dim::DimValue(1)])],
        ..Default::default()
    };
    Ok(edge::infer::onnx::model(graph, 14, "deepfake-edge trainer", &serde_json::to_string(meta)?))
}
