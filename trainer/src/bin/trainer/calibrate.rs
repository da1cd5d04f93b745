//! `trainer calibrate --model M --real DIR... --max-false-alarm RATE [--out M2]`: the threshold set
//! on real faces of the site (`trainer::eval::calibrate`).

use crate::faces::FaceArgs;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use trainer::eval::calibrate::{calibrate, CalibrateConfig};

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
    /// Write the calibrated model here [default: in place, the original kept as <model>.bak].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    faces: FaceArgs,
}

pub fn run_command(args: CalibrateArgs) -> Result<()> {
    let cfg = CalibrateConfig {
        detector: args.faces.detector(),
        model: args.model,
        real: args.real,
        max_false_alarm: args.max_false_alarm,
        out: args.out,
        margin: args.faces.margin,
        min_score: args.faces.min_score,
        all_faces: args.faces.all_faces,
    };
    let c = calibrate(&cfg, |line| eprintln!("calibrate: {line}"))?;
    for (path, cause) in &c.unreadable {
        eprintln!("calibrate: skipped {}: {cause}", path.display());
    }
    if let Some(warning) = &c.warning {
        eprintln!("calibrate: warning: {warning}");
    }
    println!(
        "threshold {:.4} (was {:.4}): {} of {} real faces called FAKE ({:.1} %, at most {:.1} % asked); \
         {} images without a face, {} unreadable",
        c.threshold,
        c.previous_threshold,
        c.called_fake,
        c.faces,
        100.0 * c.called_fake as f64 / c.faces as f64,
        100.0 * cfg.max_false_alarm,
        c.no_face,
        c.unreadable.len()
    );
    println!("written: {}", c.written.display());
    Ok(())
}
