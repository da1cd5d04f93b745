//! The REAL/FAKE classifier: any `.onnx` or `.tflite` model whose input is one RGB image and whose
//! output scores the two classes, described by a small metadata record (input normalisation, label
//! order, output kind, decision threshold) that travels with the model: in the ONNX file's
//! `metadata_props` under [`META_KEY`], or in a sidecar `<model stem>.json` beside the file, which
//! is how a `.tflite` (and any model from elsewhere) carries it.

use super::model::{self, Plan};
use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

/// The ONNX `metadata_props` key holding the [`ModelMeta`] JSON.
pub const META_KEY: &str = "deepfake_edge.meta";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Label {
    Real,
    Fake,
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Label::Real => "REAL",
            Label::Fake => "FAKE",
        })
    }
}

/// What the model's output values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Probabilities (after a sigmoid or softmax inside the model).
    Probability,
    /// Logits: a sigmoid (one output) or a softmax (two outputs) is applied here.
    Logit,
}

/// How to feed the model and read its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Class names in output order. With a single output value, it scores `labels[1]`.
    pub labels: [Label; 2],
    /// Per-channel (R, G, B) normalisation of pixels in [0, 1]: `(p - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub output: OutputKind,
    /// p(FAKE) at or above which a face is labelled FAKE.
    pub threshold: f32,
}

impl ModelMeta {
    /// Refuses metadata no classifier can be run with: a label twice, a threshold outside 0–1
    /// (just above 1 is allowed: calibration's "no face FAKE"), a mean or std that is not a
    /// plausible pixel statistic.
    pub fn check(&self) -> Result<()> {
        use crate::range::check;
        let bad = |what: &str, e: String| anyhow::anyhow!("metadata {what}: {e}");
        ensure!(self.labels[0] != self.labels[1], "metadata lists {} twice", self.labels[0]);
        if self.threshold != 1.0f32.next_up() {
            check(self.threshold, 0.0, 1.0).map_err(|e| bad("threshold", e))?;
        }
        for c in 0..3 {
            check(self.mean[c], -10.0, 10.0).map_err(|e| bad("mean", e))?;
            check(self.std[c], 1e-3, 1e3).map_err(|e| bad("std", e))?;
        }
        Ok(())
    }
}

/// Memory layout of the image input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Nchw,
    Nhwc,
}

/// A loaded classifier.
pub struct Classifier {
    plan: Plan,
    layout: Layout,
    size: u32,
    pub meta: ModelMeta,
    path: PathBuf,
}

impl Classifier {
    pub fn load(path: &Path) -> Result<Classifier> {
        Self::load_inner(path).with_context(|| format!("classifier {}", path.display()))
    }

    fn load_inner(path: &Path) -> Result<Classifier> {
        let loaded = model::load(path)?;
        let meta = match loaded.properties.get(META_KEY) {
            Some(json) => serde_json::from_str(json)
                .with_context(|| format!("metadata `{META_KEY}` is not valid"))?,
            None => read_sidecar(path)?,
        };
        meta.check()?;
        let fact = loaded.model.input_fact(0)?;
        let dims: Vec<Option<usize>> = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
        let (layout, size) = match dims.as_slice() {
            [_, Some(3), Some(h), Some(w)] if h == w => (Layout::Nchw, *h),
            [_, Some(h), Some(w), Some(3)] if h == w => (Layout::Nhwc, *h),
            _ => bail!(
                "input shape {:?} is not one square RGB image (N×3×S×S or N×S×S×3)",
                fact.shape
            ),
        };
        let shape = match layout {
            Layout::Nchw => [1, 3, size, size],
            Layout::Nhwc => [1, size, size, 3],
        };
        let plan = model::plan(loaded.model, &shape, model::AxisPass::Run)?;
        // A model with the wrong output fails here, at start-up, from the optimised model's
        // output fact (running a blank face for it would cost a whole inference).
        let output = plan.model().output_fact(0)?;
        ensure!(
            output.datum_type == f32::datum_type(),
            "output is {:?}, not f32",
            output.datum_type
        );
        let values = output.shape.as_concrete().map(|s| s.iter().product::<usize>());
        ensure!(
            matches!(values, Some(1 | 2)),
            "output {:?} has {} values per image; expected 1 or 2",
            output.shape,
            values.map_or("an unknown number of".into(), |n| n.to_string())
        );
        Ok(Classifier { plan, layout, size: size as u32, meta, path: path.to_path_buf() })
    }

    /// The side of the square face crop the model takes.
    pub fn input_size(&self) -> u32 {
        self.size
    }

    /// The optimised tract plan (for `edge bench --profile`).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The model's input tensor for one face crop of `input_size()` pixels.
    pub fn input_tensor(&self, face: &RgbImage) -> Result<Tensor> {
        let s = self.size as usize;
        ensure!(face.dimensions() == (self.size, self.size), "face crop is not {s}×{s}");
        let mut data = Vec::with_capacity(3 * s * s);
        let nchw = self.layout == Layout::Nchw;
        normalise(face, &self.meta, nchw, &mut data);
        let shape = if nchw { [1, 3, s, s] } else { [1, s, s, 3] };
        Tensor::from_shape(&shape, &data)
    }

    /// p(FAKE) for one face crop of `input_size()` pixels.
    pub fn p_fake(&self, face: &RgbImage) -> Result<f32> {
        let outputs = self.plan.run(tvec!(self.input_tensor(face)?.into()))?;
        let out = outputs[0].try_as_plain_ram()?;
        let values = out.as_slice::<f32>().context("classifier output is not f32")?;
        let fake = self.meta.labels.iter().position(|l| *l == Label::Fake).unwrap_or(1);
        let p = match (values, self.meta.output) {
            ([p], OutputKind::Probability) => *p,
            ([z], OutputKind::Logit) => sigmoid(*z),
            ([a, b], OutputKind::Probability) => [*a, *b][fake] / (a + b),
            ([a, b], OutputKind::Logit) => sigmoid([a - b, b - a][fake]),
            _ => bail!(
                "{}: output has {} values per image; expected 1 or 2",
                self.path.display(),
                values.len()
            ),
        };
        // A single output scores labels[1]; when that is REAL, p(FAKE) is its complement.
        Ok(if values.len() == 1 && fake == 0 { 1.0 - p } else { p })
    }

    /// The label of a p(FAKE) under `threshold` (the model's own when `None`).
    pub fn label(&self, p_fake: f32, threshold: Option<f32>) -> Label {
        if p_fake >= threshold.unwrap_or(self.meta.threshold) {
            Label::Fake
        } else {
            Label::Real
        }
    }
}

/// Appends the classifier input values of one face crop to `out`: pixels scaled to [0, 1], then
/// `(p - mean) / std` per channel, planar (NCHW) or interleaved (NHWC). The one definition of the
/// classifier's preprocessing: the trainer feeds its model through it too.
pub fn normalise(face: &RgbImage, meta: &ModelMeta, nchw: bool, out: &mut Vec<f32>) {
    let value = |v: u8, c: usize| (v as f32 / 255.0 - meta.mean[c]) / meta.std[c];
    if nchw {
        for c in 0..3 {
            out.extend(face.pixels().map(|px| value(px[c], c)));
        }
    } else {
        out.extend(face.pixels().flat_map(|px| [0, 1, 2].map(|c| value(px[c], c))));
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// `<dir>/<stem>.json` for `<dir>/<stem>.<ext>`.
pub fn sidecar_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

fn read_sidecar(model: &Path) -> Result<ModelMeta> {
    let sidecar = sidecar_path(model);
    let text = std::fs::read_to_string(&sidecar).with_context(|| {
        format!(
            "no metadata: the model has no `{META_KEY}` property and {} cannot be read \
             (it gives labels, mean, std, output and threshold)",
            sidecar.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", sidecar.display()))
}
