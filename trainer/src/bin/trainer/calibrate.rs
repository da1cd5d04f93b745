//! `trainer calibrate --model M --real DIR... --max-false-alarm RATE [--out M2]`: the threshold set
//! on real faces of the site (`trainer::eval::calibrate`).

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
    /// Use every face of an image [default: only the largest].
    #[arg(long)]
    all_faces: bool,
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

pub fn run_command(args: CalibrateArgs) -> Result<()> {
    let cfg = CalibrateConfig {
        detector: args
            .detector
            .unwrap_or_else(|| args.models.join(edge::infer::model_files::FULL_RANGE_FILE)),
        model: args.model,
        real: args.real,
        max_false_alarm: args.max_false_alarm,
        out: args.out,
        margin: args.margin,
        min_score: args.min_score,
        all_faces: args.all_faces,
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
