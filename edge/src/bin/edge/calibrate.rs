//! `edge calibrate --dir FRAMES --max-false-alarm RATE [--out M2]`: the classifier's threshold set
//! on real faces of the site, so an installer can tune a camera to its own scene
//! (`edge::infer::calibrate`, which `trainer calibrate` runs on the host).

use crate::cli::CalibrateOptions;
use anyhow::{ensure, Result};
use edge::infer::calibrate::{calibrate, Request};
use std::process::ExitCode;

pub fn run(options: &CalibrateOptions) -> Result<ExitCode> {
    let models = &options.models;
    ensure!(!models.detect_only, "--detect-only: calibrate sets the classifier's threshold");
    ensure!(models.threshold.is_none(), "--threshold: calibrate sets the threshold it finds");
    let request = Request {
        model: models.classifier_path(),
        real: options.dir.clone(),
        max_false_alarm: options.max_false_alarm,
        out: options.out.clone(),
        all_faces: options.all_faces,
    }
    .check()?;
    let pipeline = models.pipeline()?;
    let c = calibrate(&pipeline, &request, |line| eprintln!("edge: calibrate: {line}"))?;
    for line in c.notices() {
        eprintln!("edge: {line}");
    }
    println!("{c}");
    Ok(ExitCode::SUCCESS)
}
