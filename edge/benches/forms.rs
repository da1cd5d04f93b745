//! `cargo bench -p edge --bench forms`: the classifier in other forms than the one `edge` loads,
//! timed interleaved against it in one run (each round runs every form in turn, the order
//! rotating), with each form's outputs compared to the loaded form's on the same face crop:
//!
//! - `as loaded`: what `edge` runs (`model::load`, then the batch bound to 1 and optimised);
//! - `fixed before typing`: the ONNX input fact set to 1×3×S×S before tract types the graph;
//! - `NHWC input`: the ONNX rewritten to take NHWC (a Transpose in front), so tract can move the
//!   layout through the convolutions;
//! - `batch N`: N faces in one run (the faces of one frame classified together), per face, with
//!   NCHW and with NHWC input;
//! - `f16`: tract's f32→f16 translation of the whole graph.
//!
//! `FORMS_CLASSIFIER` (default models/classifier.onnx), `FORMS_ROUNDS` (7), `FORMS_RUNS` (30),
//! `FORMS_BATCHES` (2,4,6), `FORMS_NODES` (print the first nodes of each plan). Single-threaded, as tract runs. Run `models/fetch` first.

use anyhow::{Context, Result};
use edge::infer::model::{self, Plan};
use edge::{Classifier, Detector, DetectorConfig};
use prost::Message;
use std::time::Instant;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_core::transform::ModelTransform;

/// One form: its plan, its input, and how many faces one run classifies.
struct Form {
    name: String,
    plan: Plan,
    input: Tensor,
    faces: usize,
}

impl Form {
    /// The outputs of one run, as f32, one row of values per face.
    fn outputs(&self) -> Result<Vec<Vec<f32>>> {
        let out = self.plan.run(tvec!(self.input.clone().into()))?;
        let out = out[0].cast_to::<f32>()?;
        let values = out.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let per = values.len() / self.faces;
        Ok(values.chunks(per).map(|c| c.to_vec()).collect())
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The ONNX model with an NHWC input `input_nhwc` and a Transpose to the original NCHW input.
fn nhwc_onnx(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut proto = pb::ModelProto::decode(bytes).context("not an ONNX model")?;
    let graph = proto.graph.as_mut().context("ONNX model without a graph")?;
    let input = graph.input.first_mut().context("ONNX graph without an input")?;
    let old = input.name.clone();
    input.name = "input_nhwc".into();
    let tensor = match input.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        _ => anyhow::bail!("ONNX input is not a tensor"),
    };
    let dims = &mut tensor.shape.as_mut().context("ONNX input without a shape")?.dim;
    anyhow::ensure!(dims.len() == 4, "ONNX input is not 4-D");
    let c = dims.remove(1);
    dims.push(c);
    let mut transpose = testkit::node("Transpose", &["input_nhwc"], &old, vec![]);
    transpose.attribute.push(testkit::ints("perm", &[0, 3, 1, 2]));
    graph.node.insert(0, transpose);
    Ok(proto.encode_to_vec())
}

fn main() -> Result<()> {
    let rounds: usize = env_or("FORMS_ROUNDS", 7);
    let runs: usize = env_or("FORMS_RUNS", 30);
    let batches: Vec<usize> = std::env::var("FORMS_BATCHES")
        .unwrap_or_else(|_| "2,4,6".into())
        .split(',')
        .filter_map(|b| b.trim().parse().ok())
        .collect();
    let path = std::env::var_os("FORMS_CLASSIFIER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| testkit::model("classifier.onnx"));
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;

    // The face crop edge feeds the classifier on astronaut.png, NCHW as the model takes it.
    let detector = Detector::load(
        &testkit::model("face_detection_full_range.tflite"),
        DetectorConfig::default(),
    )?;
    let classifier = Classifier::load(&path)?;
    let s = classifier.input_size() as usize;
    let img = edge::input::decode::open(&testkit::photo("astronaut.png"))?;
    let face = detector.detect(&img)?.into_iter().next().context("no face on astronaut.png")?;
    let crop =
        edge::infer::crop::face(&img, &face.bbox, edge::infer::crop::DEFAULT_MARGIN, s as u32);
    let nchw = classifier.input_tensor(&crop)?;
    anyhow::ensure!(nchw.shape() == [1, 3, s, s], "bench expects an NCHW classifier");

    let mut forms = vec![Form {
        name: "as loaded".into(),
        plan: model::plan(model::load(&path)?.model, &[1, 3, s, s], model::AxisPass::Run)?,
        input: nchw.clone(),
        faces: 1,
    }];

    let fixed = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])?
        .with_input_fact(0, f32::fact([1, 3, s, s]).into())?
        .into_optimized()?
        .into_runnable()?;
    forms.push(Form {
        name: "fixed before typing".into(),
        plan: fixed,
        input: nchw.clone(),
        faces: 1,
    });

    let nhwc_bytes = nhwc_onnx(&bytes)?;
    let nhwc_model = || -> Result<TypedModel> {
        tract_onnx::onnx().model_for_read(&mut &nhwc_bytes[..])?.into_typed()
    };
    forms.push(Form {
        name: "NHWC input".into(),
        plan: model::plan(nhwc_model()?, &[1, s, s, 3], model::AxisPass::Run)?,
        input: nchw.clone().permute_axes(&[0, 2, 3, 1])?,
        faces: 1,
    });

    for &n in &batches {
        let inputs: Vec<Tensor> = (0..n).map(|_| nchw.clone()).collect();
        let batch = Tensor::stack_tensors(0, &inputs)?;
        forms.push(Form {
            name: format!("batch {n}"),
            plan: model::plan(model::load(&path)?.model, &[n, 3, s, s], model::AxisPass::Run)?,
            input: batch.clone(),
            faces: n,
        });
        forms.push(Form {
            name: format!("NHWC batch {n}"),
            plan: model::plan(nhwc_model()?, &[n, s, s, 3], model::AxisPass::Run)?,
            input: batch.permute_axes(&[0, 2, 3, 1])?,
            faces: n,
        });
    }

    let mut f16_model = model::load(&path)?.model;
    FloatPrecisionTranslator::new(f32::datum_type(), f16::datum_type())
        .transform(&mut f16_model)?;
    forms.push(Form {
        name: "f16".into(),
        plan: model::plan(f16_model, &[1, 3, s, s], model::AxisPass::Run)?,
        input: nchw.cast_to::<f16>()?.into_owned(),
        faces: 1,
    });

    // `FORMS_NODES=1`: the first nodes of each optimised plan with their output shapes (shows
    // whether tract moved the NHWC layout through the convolutions).
    if std::env::var_os("FORMS_NODES").is_some() {
        for form in &forms {
            let m = form.plan.model();
            let nodes: Vec<String> = m
                .nodes()
                .iter()
                .take(8)
                .map(|n| format!("{} {:?}", n.op().name(), n.outputs[0].fact.shape))
                .collect();
            eprintln!("{}: {}", form.name, nodes.join(" | "));
        }
    }
    let reference = forms[0].outputs()?;
    let mut diffs = vec![];
    for form in &forms {
        let mut worst = 0f32;
        for row in form.outputs()? {
            for (a, b) in row.iter().zip(&reference[0]) {
                worst = worst.max((a - b).abs());
            }
        }
        diffs.push(worst);
    }

    let mut samples = vec![vec![]; forms.len()];
    for round in 0..rounds {
        for k in 0..forms.len() {
            let i = (k + round) % forms.len();
            let form = &forms[i];
            for _ in 0..runs {
                let input = form.input.clone().into();
                let t = Instant::now();
                form.plan.run(tvec!(input))?;
                samples[i].push(t.elapsed().as_secs_f64() * 1e3 / form.faces as f64);
            }
        }
    }
    let base = median(samples[0].clone());
    println!(
        "## {} ({s}×{s}), {rounds} rounds × {runs} runs, interleaved\n",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    println!("| form | median ms per face | ÷ as loaded | max abs diff to as loaded |");
    println!("| --- | ---: | ---: | ---: |");
    for ((form, times), diff) in forms.iter().zip(samples).zip(diffs) {
        let ms = median(times);
        println!("| {} | {ms:.3} | {:.3} | {diff:.1e} |", form.name, ms / base);
    }
    Ok(())
}
