//! Per-stage timings of the pipeline on one image, repeated: the figures behind `edge bench` and
//! `cargo bench`; the models alone on the same prepared inputs (`--model-only`, which the
//! comparison with other runtimes in edge/benches/compare uses); and tract's time per node
//! (`--profile`). Medians, because these machines are noisy; never asserted in tests.

use super::crop;
use super::model::Plan;
use super::pipeline::Pipeline;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;
use tract_onnx::prelude::*;

/// Median and 90th percentile of one stage, in milliseconds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Stat {
    pub median: f64,
    pub p90: f64,
}

impl Stat {
    fn of(mut samples: Vec<f64>) -> Stat {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Stat { median: at(0.5), p90: at(0.9) }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub file: String,
    pub runs: usize,
    pub faces: usize,
    pub decode: Stat,
    /// The whole detection stage (letterbox, model run per pass, decode, NMS).
    pub detect: Stat,
    /// One detector model run on a prepared input.
    pub detector_model: Stat,
    /// Crop of one face.
    pub crop: Stat,
    /// Classification of one face (normalisation and model run); none without a classifier.
    pub classify: Option<Stat>,
    /// Peak resident memory of this process so far (VmHWM), in MiB, where the OS reports it.
    pub peak_rss_mib: Option<f64>,
}

fn timed<T>(samples: &mut Vec<f64>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    let out = f()?;
    samples.push(t.elapsed().as_secs_f64() * 1e3);
    Ok(out)
}

/// Runs every stage `runs` times on `path` (after one warm-up run).
pub fn run(pipeline: &Pipeline, path: &Path, runs: usize) -> Result<BenchReport> {
    let runs = runs.max(1);
    let (mut dec, mut det, mut model, mut cr, mut cls) = (vec![], vec![], vec![], vec![], vec![]);
    let size = pipeline.crop_size();
    let mut faces = 0;
    for i in 0..=runs {
        let img = timed(&mut dec, || crate::input::decode::open(path))?;
        let found = timed(&mut det, || pipeline.detector.detect(&img))?;
        timed(&mut model, || pipeline.detector.run_blank())?;
        for face in &found {
            let c = timed(&mut cr, || Ok(crop::face(&img, &face.bbox, pipeline.margin, size)))?;
            if let Some(classifier) = &pipeline.classifier {
                timed(&mut cls, || classifier.p_fake(&c))?;
            }
        }
        faces = found.len();
        if i == 0 {
            // The warm-up run is not counted.
            for v in [&mut dec, &mut det, &mut model, &mut cr, &mut cls] {
                v.clear();
            }
        }
    }
    if faces == 0 {
        anyhow::bail!("{}: no face found, so crop and classify cannot be timed", path.display());
    }
    Ok(BenchReport {
        file: path.display().to_string(),
        runs,
        faces,
        decode: Stat::of(dec),
        detect: Stat::of(det),
        detector_model: Stat::of(model),
        crop: Stat::of(cr),
        classify: (!cls.is_empty()).then(|| Stat::of(cls)),
        peak_rss_mib: peak_rss_mib(),
    })
}

/// VmHWM from /proc/self/status, in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl BenchReport {
    /// A Markdown table of the medians.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "{} — {} runs, {} face(s)\n\n| stage | median ms | p90 ms |\n| --- | ---: | ---: |\n",
            self.file, self.runs, self.faces
        );
        for (name, stat) in [
            ("decode", Some(self.decode)),
            ("detect (whole stage)", Some(self.detect)),
            ("detector model run", Some(self.detector_model)),
            ("crop (per face)", Some(self.crop)),
            ("classify (per face)", self.classify),
        ] {
            let Some(stat) = stat else { continue };
            s += &format!("| {name} | {:.2} | {:.2} |\n", stat.median, stat.p90);
        }
        if let Some(mib) = self.peak_rss_mib {
            s += &format!("\npeak RSS {mib:.1} MiB\n");
        }
        s
    }
}

/// A model of the pipeline with a real input prepared as the pipeline prepares it: the detector
/// on the letterboxed image, the classifier on the first face's crop.
pub struct Prepared {
    /// `detector` or `classifier`.
    pub model: &'static str,
    pub plan: Plan,
    pub input: Tensor,
}

/// The models of `pipeline` with their inputs from the image at `path`.
pub fn prepare(pipeline: &Pipeline, path: &Path) -> Result<Vec<Prepared>> {
    let img = crate::input::decode::open(path)?;
    let detector = &pipeline.detector;
    let mut out = vec![Prepared {
        model: "detector",
        plan: detector.plan().clone(),
        input: detector.input_tensor(&img)?,
    }];
    if let Some(classifier) = &pipeline.classifier {
        let faces = detector.detect(&img)?;
        let Some(face) = faces.first() else {
            anyhow::bail!("{}: no face found, so the classifier has no input", path.display());
        };
        let crop = crop::face(&img, &face.bbox, pipeline.margin, classifier.input_size());
        out.push(Prepared {
            model: "classifier",
            plan: classifier.plan().clone(),
            input: classifier.input_tensor(&crop)?,
        });
    }
    Ok(out)
}

/// Timings of one model run alone (no pre- or post-processing), single-threaded.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelTiming {
    pub model: &'static str,
    pub input_shape: Vec<usize>,
    pub output_shapes: Vec<Vec<usize>>,
    pub runs: usize,
    pub ms: Stat,
    /// Every timed run, in order (for medians over several interleaved invocations).
    pub samples_ms: Vec<f64>,
}

/// Runs each model `runs` times on its prepared input (after one warm-up run), the models
/// alternating. With `dump`, writes each input and output there as raw little-endian f32
/// (`<model>.input.f32`, `<model>.output<i>.f32`), for checking other runtimes against tract.
pub fn model_only(
    prepared: &[Prepared],
    runs: usize,
    dump: Option<&Path>,
) -> Result<Vec<ModelTiming>> {
    let runs = runs.max(1);
    let mut samples = vec![vec![]; prepared.len()];
    let mut shapes = vec![vec![]; prepared.len()];
    for i in 0..=runs {
        for ((p, times), shape) in prepared.iter().zip(&mut samples).zip(&mut shapes) {
            let input = p.input.clone().into();
            let t = Instant::now();
            let outputs = p.plan.run(tvec!(input))?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if i > 0 {
                times.push(ms);
                continue;
            }
            // The warm-up run is not counted; its outputs are the ones reported.
            *shape = outputs.iter().map(|o| o.shape().to_vec()).collect();
            if let Some(dir) = dump {
                write_f32(&dir.join(format!("{}.input.f32", p.model)), &p.input)?;
                for (k, out) in outputs.iter().enumerate() {
                    write_f32(&dir.join(format!("{}.output{k}.f32", p.model)), out)?;
                }
            }
        }
    }
    Ok(prepared
        .iter()
        .zip(samples)
        .zip(shapes)
        .map(|((p, samples_ms), output_shapes)| ModelTiming {
            model: p.model,
            input_shape: p.input.shape().to_vec(),
            output_shapes,
            runs,
            ms: Stat::of(samples_ms.clone()),
            samples_ms,
        })
        .collect())
}

fn write_f32(path: &Path, tensor: &Tensor) -> Result<()> {
    let plain = tensor.try_as_plain_ram()?;
    let values = plain.as_slice::<f32>().with_context(|| format!("{}: not f32", path.display()))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Time spent in one node of a tract plan, median over the profiled runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeTime {
    pub node: usize,
    pub name: String,
    /// The op's type, e.g. `OptMatMul`, `DepthWise`.
    pub op: String,
    /// Shape of its (first) output.
    pub output: String,
    pub ms: f64,
}

/// Where the time of one model run goes, node by node.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Profile {
    pub model: &'static str,
    pub runs: usize,
    /// Median of the whole runs, measured around the same runs.
    pub run_ms: f64,
    /// Median over the runs of the time outside every node (the run less its nodes' sum):
    /// the plan's own work between nodes.
    pub outside_ms: f64,
    /// Every node that took time, slowest first.
    pub nodes: Vec<NodeTime>,
}

/// Profiles one prepared model over `runs` runs (after one warm-up run) with tract's per-node
/// evaluation hook: each node's evaluation is timed on its own.
pub fn profile(p: &Prepared, runs: usize) -> Result<Profile> {
    use tract_onnx::tract_core::plan::{eval, SimpleState};
    let runs = runs.max(1);
    let model = p.plan.model();
    let mut per_node = vec![vec![]; model.nodes.len()];
    let (mut whole, mut outside) = (vec![], vec![]);
    let mut state = SimpleState::new(&p.plan)?;
    for i in 0..=runs {
        let mut this_run = vec![0f64; model.nodes.len()];
        let t = Instant::now();
        state.run_plan_with_eval(
            tvec!(p.input.clone().into()),
            |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = eval(ctx, op_state, node, inputs);
                this_run[node.id] += t.elapsed().as_secs_f64() * 1e3;
                out
            },
        )?;
        if i > 0 {
            let run = t.elapsed().as_secs_f64() * 1e3;
            whole.push(run);
            outside.push(run - this_run.iter().sum::<f64>());
            for (samples, ms) in per_node.iter_mut().zip(this_run) {
                samples.push(ms);
            }
        }
    }
    let mut nodes: Vec<NodeTime> = model
        .nodes
        .iter()
        .zip(per_node)
        .map(|(node, samples)| NodeTime {
            node: node.id,
            name: node.name.clone(),
            op: node.op().name().to_string(),
            output: node.outputs.first().map(|o| format!("{:?}", o.fact.shape)).unwrap_or_default(),
            ms: Stat::of(samples).median,
        })
        .filter(|n| n.ms > 0.0)
        .collect();
    nodes.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(Profile {
        model: p.model,
        runs,
        run_ms: Stat::of(whole).median,
        outside_ms: Stat::of(outside).median,
        nodes,
    })
}

impl Profile {
    /// Time per op type: (op, nodes, ms), slowest first.
    pub fn by_op(&self) -> Vec<(String, usize, f64)> {
        let mut groups: Vec<(String, usize, f64)> = vec![];
        for n in &self.nodes {
            match groups.iter_mut().find(|g| g.0 == n.op) {
                Some(g) => {
                    g.1 += 1;
                    g.2 += n.ms;
                }
                None => groups.push((n.op.clone(), 1, n.ms)),
            }
        }
        groups.sort_by(|a, b| b.2.total_cmp(&a.2));
        groups
    }

    /// Markdown tables: the `top` slowest nodes, then every op type.
    pub fn to_markdown(&self, top: usize) -> String {
        let total: f64 = self.nodes.iter().map(|n| n.ms).sum();
        let share = |ms: f64| 100.0 * ms / total.max(f64::MIN_POSITIVE);
        let mut s = format!(
            "{} — {} runs: {:.2} ms per run, {:.2} ms in {} nodes, {:.2} ms outside them \
             (medians)\n\n\
             | node | op | output | ms | % |\n| --- | --- | --- | ---: | ---: |\n",
            self.model,
            self.runs,
            self.run_ms,
            total,
            self.nodes.len(),
            self.outside_ms
        );
        for n in self.nodes.iter().take(top) {
            s += &format!(
                "| {} | {} | {} | {:.3} | {:.1} |\n",
                n.name,
                n.op,
                n.output,
                n.ms,
                share(n.ms)
            );
        }
        s += "\n| op type | nodes | ms | % |\n| --- | ---: | ---: | ---: |\n";
        for (op, count, ms) in self.by_op() {
            s += &format!("| {op} | {count} | {ms:.3} | {:.1} |\n", share(ms));
        }
        s
    }
}
