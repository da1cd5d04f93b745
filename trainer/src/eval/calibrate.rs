//! `trainer calibrate`: a model's threshold set on a site's own real faces, so that at most a
//! chosen share of them is called FAKE, and written into the model's metadata where `edge` reads
//! it (the ONNX file's property, or the sidecar `.json` of a `.tflite`).

use super::evaluate::{score, Image};
use anyhow::{bail, ensure, Context, Result};
use edge::infer::classify::{sidecar_path, Label, ModelMeta, META_KEY};
use edge::input::files::expand_inputs;
use edge::{DetectorConfig, Pipeline};
use std::path::{Path, PathBuf};

/// With fewer real faces than this many times 1/RATE, the rate is a guess: a warning says so.
pub const FACES_PER_ALARM: f64 = 10.0;

#[derive(Clone, Debug)]
pub struct CalibrateConfig {
    pub model: PathBuf,
    /// Folders (or files) of real faces from the site.
    pub real: Vec<PathBuf>,
    pub max_false_alarm: f64,
    /// Where the calibrated model goes; `None`: in place, the original kept as `<model>.bak`.
    pub out: Option<PathBuf>,
    pub detector: PathBuf,
    pub margin: f32,
    pub min_score: f32,
    pub all_faces: bool,
}

/// What calibration found and wrote.
#[derive(Debug)]
pub struct Calibration {
    pub threshold: f32,
    pub previous_threshold: f32,
    pub faces: usize,
    /// Real faces the new threshold calls FAKE.
    pub called_fake: usize,
    pub written: PathBuf,
    pub no_face: usize,
    pub unreadable: Vec<(PathBuf, String)>,
    /// Set when too few faces back the rate asked for.
    pub warning: Option<String>,
}

/// The threshold (FAKE when p ≥ it) that calls at most `rate` of `real` FAKE: halfway between the
/// highest score that must stay REAL and the next higher one (1 above the highest), as the
/// trainer sets its own thresholds, so no real face sits on the edge.
pub fn threshold_for(real: &[f32], rate: f64) -> f32 {
    let mut p = real.to_vec();
    p.sort_by(|a, b| b.total_cmp(a));
    let allowed = ((rate * p.len() as f64) + 1e-9).floor() as usize;
    let Some(&below) = p.get(allowed) else { return 0.0 };
    let above = p[..allowed].iter().rev().find(|&&v| v > below).copied().unwrap_or(1.0);
    let t = (above + below) / 2.0;
    if t > below {
        t
    } else {
        below.next_up()
    }
}

pub fn calibrate(cfg: &CalibrateConfig, mut progress: impl FnMut(&str)) -> Result<Calibration> {
    ensure!(
        (0.0..1.0).contains(&cfg.max_false_alarm),
        "--max-false-alarm {} is not a share of the real faces from 0 up to (not including) 1",
        cfg.max_false_alarm
    );
    let detector = DetectorConfig { min_score: cfg.min_score, ..DetectorConfig::default() };
    let pipeline = Pipeline::load(&cfg.detector, detector, Some(&cfg.model), cfg.margin, None)?;
    let classifier = pipeline.classifier.as_ref().context("no classifier")?;
    let mut meta: ModelMeta = classifier.meta.clone();
    for dir in &cfg.real {
        ensure!(dir.exists(), "{}: no such file or folder", dir.display());
    }
    let images: Vec<Image> =
        expand_inputs(&cfg.real).into_iter().map(|(p, l)| (0, p, l, Label::Real)).collect();
    let scored = score(&pipeline, images, cfg.all_faces, &mut progress)?;
    if scored.faces.is_empty() {
        bail!(
            "no real face found: {} images without a face, {} unreadable",
            scored.no_face.len(),
            scored.unreadable.len()
        );
    }
    let p: Vec<f32> = scored.faces.iter().map(|f| f.p_fake).collect();
    let threshold = threshold_for(&p, cfg.max_false_alarm);
    let needed = FACES_PER_ALARM / cfg.max_false_alarm;
    let warning = ((p.len() as f64) < needed).then(|| {
        format!(
            "only {} real faces: a false-alarm rate of {} is only estimated well from about {} \
             or more; on new faces it may differ widely",
            p.len(),
            cfg.max_false_alarm,
            if needed.is_finite() { format!("{needed:.0}") } else { "very many".into() }
        )
    });
    let previous_threshold = meta.threshold;
    meta.threshold = threshold;
    let written = write_threshold(&cfg.model, cfg.out.as_deref(), &meta)?;
    Ok(Calibration {
        threshold,
        previous_threshold,
        faces: p.len(),
        called_fake: p.iter().filter(|&&v| v >= threshold).count(),
        written,
        no_face: scored.no_face.len(),
        unreadable: scored.unreadable,
        warning,
    })
}

/// Writes `model` with `meta` to `out`, or in place keeping the original as `<model>.bak`. An ONNX
/// file that carries its metadata as a property gets the property rewritten; otherwise (TFLite,
/// or a model from elsewhere) the sidecar `.json` is written beside the output.
fn write_threshold(model: &Path, out: Option<&Path>, meta: &ModelMeta) -> Result<PathBuf> {
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let json = serde_json::to_string_pretty(meta)?;
    let loaded = edge::infer::model::load(model)?;
    let target = match out {
        Some(out) => out.to_path_buf(),
        None => {
            let backup = model.with_extension(format!(
                "{}.bak",
                model.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default()
            ));
            std::fs::write(&backup, &bytes)
                .with_context(|| format!("cannot write {}", backup.display()))?;
            if !loaded.properties.contains_key(META_KEY) {
                let sidecar = sidecar_path(model);
                std::fs::copy(&sidecar, sidecar_path(&backup))
                    .with_context(|| format!("cannot back up {}", sidecar.display()))?;
            }
            model.to_path_buf()
        }
    };
    if loaded.properties.contains_key(META_KEY) {
        let rewritten = edge::infer::onnx::with_meta(&bytes, &serde_json::to_string(meta)?)?;
        crate::files::write_atomically(&target, |tmp| Ok(std::fs::write(tmp, &rewritten)?))?;
    } else {
        if target != model {
            crate::files::write_atomically(&target, |tmp| Ok(std::fs::write(tmp, &bytes)?))?;
        }
        let sidecar = sidecar_path(&target);
        crate::files::write_atomically(&sidecar, |tmp| Ok(std::fs::write(tmp, &json)?))?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_calls_at_most_the_share_asked() {
        let p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
        // 0 %: above the highest, halfway to 1.
        assert!((threshold_for(&p, 0.0) - 0.95).abs() < 1e-6);
        // 10 % of 10: the highest may be FAKE; halfway between 0.9 and 0.8.
        assert!((threshold_for(&p, 0.1) - 0.85).abs() < 1e-6);
        // 25 % of 10 = 2.5: two may be FAKE.
        assert!((threshold_for(&p, 0.25) - 0.75).abs() < 1e-6);
        for rate in [0.0, 0.1, 0.15, 0.25, 0.5, 0.99] {
            let t = threshold_for(&p, rate);
            let called = p.iter().filter(|&&v| v >= t).count();
            assert!(called as f64 <= rate * p.len() as f64 + 1e-9, "{rate}: {called} at {t}");
        }
        // Ties at the edge stay REAL together.
        let tied = [0.9, 0.7, 0.7, 0.7, 0.1];
        let t = threshold_for(&tied, 0.5);
        assert_eq!(tied.iter().filter(|&&v| v >= t).count(), 1);
        assert!((t - 0.8).abs() < 1e-6);
        // A score of exactly 1 that must stay REAL.
        assert!(threshold_for(&[1.0, 0.5], 0.0) > 1.0);
    }
}
