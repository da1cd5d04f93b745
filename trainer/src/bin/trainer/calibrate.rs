//! `trainer calibrate --model M --real DIR... --max-false-alarm RATE [--out M2]`: the threshold set
//! on real faces of the site (`edge::infer::calibrate`, which `edge calibrate` runs on the board).

use crate::faces::FaceArgs;
use anyhow::Result;
use clap::Args;
use edge::infer::calibrate::{calibrate, Request};
use edge::{DetectorConfig, Pipeline};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The classifier (.onnx, or .tflite with its .json sidecar).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Images or folders of real faces (searched recursively). Repeat for several.
    #[arg(long, required = true, value_name = "PATH")]
    real: Vec<PathBuf>,
    /// The largest share of these real faces the model may call FAKE (e.g. 0.01).
    #[arg(long, value_name = "RATE")]
    max_false_alarm: f64,
    /// Write the calibrated model here [default: in place, the original kept as
    /// <name>.bak.<ext>].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    faces: FaceArgs,
}

pub fn run_command(args: CalibrateArgs) -> Result<()> {
    let request = Request {
        model: args.model,
        real: args.real,
        max_false_alarm: args.max_false_alarm,
        out: args.out,
        all_faces: args.faces.all_faces,
    }
    .check()?;
    let detector =
        DetectorConfig { min_score: args.faces.detector.min_score, ..DetectorConfig::default() };
    let pipeline = Pipeline::load(
        &args.faces.detector.path(),
        detector,
        Some(&request.model),
        args.faces.detector.margin,
        None,
    )?;
    let c = calibrate(&pipeline, &request, |line| eprintln!("calibrate: {line}"))?;
    for line in c.notices() {
        eprintln!("calibrate: {line}");
    }
    println!("{c}");
    Ok(())
}
