//! `trainer eval --model M --data DIR... --out DIR`: a classifier scored on labelled folders
//! through edge's own detector and crop (`trainer::eval::evaluate`).

use crate::faces::FaceArgs;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use trainer::eval::evaluate::{self, EvalConfig};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The classifier (.onnx or .tflite, as `edge --model` takes it).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// A labelled folder: training_real/ and training_fake/ (possibly nested) or real/ and fake/.
    /// Repeat for several; each is reported on its own and pooled.
    #[arg(long, required = true, value_name = "DIR")]
    data: Vec<PathBuf>,
    /// Where faces.csv, summary.json and summary.md go.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Threshold to use instead of the model's own: a face is FAKE when p(FAKE) reaches it.
    #[arg(long, value_name = "P", value_parser = edge::range::within(0.0f32, 1.0))]
    threshold: Option<f32>,
    /// The images are face crops already (as `trainer fakes` and `edge --crops` write them):
    /// each is scored whole as one face, without detection.
    #[arg(long, conflicts_with = "all_faces")]
    crops: bool,
    #[command(flatten)]
    faces: FaceArgs,
}

/// Evaluates, writes the files and prints the Markdown summary.
pub fn run_command(args: EvalArgs) -> Result<()> {
    let cfg = EvalConfig {
        detector: args.faces.detector.path(),
        model: args.model,
        data: args.data,
        margin: args.faces.detector.margin,
        min_score: args.faces.detector.min_score,
        all_faces: args.faces.all_faces,
        threshold: args.threshold,
        crops: args.crops,
    };
    // Before any work: a folder that cannot be written fails now, not after every image.
    edge::output::check_writable(&args.out).context("--out")?;
    let eval = evaluate::evaluate(&cfg, |line| eprintln!("{line}"))?;
    evaluate::write(&eval, &args.out)?;
    print!("{}", evaluate::markdown(&eval));
    Ok(())
}
