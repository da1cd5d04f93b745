//! `trainer eval --model M --data DIR... --out DIR`: a classifier scored on labelled folders
//! through edge's own detector and crop (`trainer::eval::evaluate`).

use anyhow::Result;
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
    /// Score every face of an image [default: only the largest, one per image].
    #[arg(long)]
    all_faces: bool,
    /// Threshold to use instead of the model's own: a face is FAKE when p(FAKE) reaches it.
    #[arg(long, value_name = "P")]
    threshold: Option<f32>,
    /// Face detector file [default: <models>/face_detection_full_range.tflite].
    #[arg(long, value_name = "PATH")]
    detector: Option<PathBuf>,
    /// Folder of the detector files.
    #[arg(long, env = "EDGE_MODELS", default_value = "models", value_name = "DIR")]
    models: PathBuf,
    #[arg(long, default_value_t = edge::infer::crop::DEFAULT_MARGIN)]
    margin: f32,
    #[arg(long, default_value_t = edge::DetectorConfig::default().min_score)]
    min_score: f32,
}

/// Evaluates, writes the files and prints the Markdown summary.
pub fn run_command(args: EvalArgs) -> Result<()> {
    let cfg = EvalConfig {
        detector: args
            .detector
            .unwrap_or_else(|| args.models.join(edge::infer::model_files::FULL_RANGE_FILE)),
        model: args.model,
        data: args.data,
        margin: args.margin,
        min_score: args.min_score,
        all_faces: args.all_faces,
        threshold: args.threshold,
    };
    let eval = evaluate::evaluate(&cfg, |line| eprintln!("{line}"))?;
    evaluate::write(&eval, &args.out)?;
    print!("{}", evaluate::markdown(&eval));
    Ok(())
}
