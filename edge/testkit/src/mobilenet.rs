//! MobileNetV3-Small (Howard et al. 2019, torchvision's layer table) as ONNX, with batch norm folded
//! into the convolutions and deterministic pseudo-random weights: the architecture the trainer
//! trains, for timing the classifier stage before a trained model exists. Its outputs mean nothing.

use super::{int, model_proto, tensor, value_info};
use tract_onnx::pb;

/// (kernel, expanded channels, out channels, squeeze-excite, hard-swish, stride) per bottleneck.
const BNECKS: [(i64, i64, i64, bool, bool, i64); 11] = [
    (3, 16, 16, true, false, 2),
    (3, 72, 24, false, false, 2),
    (3, 88, 24, false, false, 1),
    (5, 96, 40, true, true, 2),
    (5, 240, 40, true, true, 1),
    (5, 240, 40, true, true, 1),
    (5, 120, 48, true, true, 1),
    (5, 144, 48, true, true, 1),
    (5, 288, 96, true, true, 2),
    (5, 576, 96, true, true, 1),
    (5, 576, 96, true, true, 1),
];

struct Builder {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    seed: u64,
    n: usize,
}

impl Builder {
    fn name(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}{}", self.n)
    }

    /// Weights uniform in ±sqrt(3 / fan_in) (unit variance through the layer).
    fn weights(&mut self, dims: &[i64], fan_in: i64) -> String {
        let bound = (3.0 / fan_in as f32).sqrt();
        let count = dims.iter().product::<i64>() as usize;
        let data: Vec<f32> = (0..count)
            .map(|_| {
                self.seed =
                    self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((self.seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
            })
            .collect();
        let name = self.name("w");
        self.inits.push(tensor(&name, dims, &data));
        name
    }

    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        let out = self.name(&op.to_lowercase());
        self.nodes.push(super::node(op, inputs, &out, attrs));
        out
    }

    fn conv(&mut self, x: &str, cin: i64, cout: i64, k: i64, stride: i64, groups: i64) -> String {
        let w = self.weights(&[cout, cin / groups, k, k], cin / groups * k * k);
        let b = self.weights(&[cout], 1000);
        let p = k / 2;
        self.op(
            "Conv",
            &[x, &w, &b],
            vec![
                super::ints("kernel_shape", &[k, k]),
                super::ints("strides", &[stride, stride]),
                super::ints("pads", &[p, p, p, p]),
                int("group", groups),
            ],
        )
    }

    fn act(&mut self, x: &str, hard_swish: bool) -> String {
        self.op(if hard_swish { "HardSwish" } else { "Relu" }, &[x], vec![])
    }

    fn squeeze_excite(&mut self, x: &str, c: i64) -> String {
        let squeezed = ((c / 4 + 4) / 8 * 8).max(8);
        let s = self.op("GlobalAveragePool", &[x], vec![]);
        let s = self.conv(&s, c, squeezed, 1, 1, 1);
        let s = self.act(&s, false);
        let s = self.conv(&s, squeezed, c, 1, 1, 1);
        let s = self.op("HardSigmoid", &[&s], vec![super::float("alpha", 1.0 / 6.0)]);
        self.op("Mul", &[x, &s], vec![])
    }
}

/// MobileNetV3-Small for `size`×`size` NCHW input, one sigmoid output, with the test metadata.
pub fn onnx(size: i64) -> Vec<u8> {
    let mut b = Builder { nodes: vec![], inits: vec![], seed: 42, n: 0 };
    let x = b.conv("image", 3, 16, 3, 2, 1);
    let mut x = b.act(&x, true);
    let mut cin = 16;
    for (k, exp, cout, se, hs, stride) in BNECKS {
        let input = x.clone();
        if exp != cin {
            x = b.conv(&x, cin, exp, 1, 1, 1);
            x = b.act(&x, hs);
        }
        x = b.conv(&x, exp, exp, k, stride, exp);
        x = b.act(&x, hs);
        if se {
            x = b.squeeze_excite(&x, exp);
        }
        x = b.conv(&x, exp, cout, 1, 1, 1);
        if stride == 1 && cin == cout {
            x = b.op("Add", &[&x, &input], vec![]);
        }
        cin = cout;
    }
    x = b.conv(&x, cin, 576, 1, 1, 1);
    x = b.act(&x, true);
    x = b.op("GlobalAveragePool", &[&x], vec![]);
    x = b.op("Flatten", &[&x], vec![]);
    let w = b.weights(&[1024, 576], 576);
    let bias = b.weights(&[1024], 1000);
    x = b.op("Gemm", &[&x, &w, &bias], vec![int("transB", 1)]);
    x = b.act(&x, true);
    let w = b.weights(&[1, 1024], 1024);
    let bias = b.weights(&[1], 1000);
    x = b.op("Gemm", &[&x, &w, &bias], vec![int("transB", 1)]);
    let out = b.op("Sigmoid", &[&x], vec![]);
    let graph = pb::GraphProto {
        name: "mobilenet_v3_small".into(),
        node: b.nodes,
        initializer: b.inits,
        input: vec![value_info("image", &[1, 3, size, size])],
        output: vec![value_info(&out, &[1, 1])],
        ..Default::default()
    };
    model_proto(graph, 14)
}
