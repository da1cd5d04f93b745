//! Calibration: a classifier's threshold set on a site's own real faces, so that at most a chosen
//! share of them is called FAKE, written into the model's metadata where `edge` reads it (the ONNX
//! file's property, or the sidecar `.json` of a `.tflite`). `edge calibrate` runs it on the board
//! (an installer's frames of the camera's own scene), `trainer calibrate` on the host.

use super::classify::{sidecar_path, ModelMeta, META_KEY};
use super::pipeline::{FaceReport, Pipeline};
use crate::input::files::expand_inputs;
use crate::output::write_atomically;
use anyhow::{bail, ensure, Context, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// With fewer real faces than this many times 1/RATE, the rate is a guess: a warning says so.
pub const FACES_PER_ALARM: f64 = 10.0;

/// What to calibrate, checked before any model is loaded so a bad request fails at once.
#[derive(Clone, Debug)]
pub struct Request {
    /// The classifier whose threshold is set (the one the pipeline was loaded with).
    pub model: PathBuf,
    /// Images or folders (searched recursively) of real faces from the site.
    pub real: Vec<PathBuf>,
    /// The largest share of those faces the model may call FAKE, in [0, 1).
    pub max_false_alarm: f64,
    /// Where the calibrated model goes; `None`: in place, the original kept as a backup.
    pub out: Option<PathBuf>,
    /// Every face of an image, instead of only the largest.
    pub all_faces: bool,
}

impl Request {
    pub fn check(self) -> Result<Request> {
        ensure!(
            (0.0..1.0).contains(&self.max_false_alarm),
            "--max-false-alarm {} is not a share of the real faces from 0 up to (not including) 1",
            self.max_false_alarm
        );
        for dir in &self.real {
            ensure!(dir.exists(), "{}: no such file or folder", dir.display());
        }
        Ok(self)
    }
}

/// What calibration found and wrote.
#[derive(Debug)]
pub struct Calibration {
    pub threshold: f32,
    pub previous_threshold: f32,
    pub max_false_alarm: f64,
    pub faces: usize,
    /// Real faces the new threshold calls FAKE.
    pub called_fake: usize,
    /// How high the share of new real faces like these that it calls FAKE may be
    /// ([`false_alarm_bound`]).
    pub false_alarm_bound: f64,
    pub written: PathBuf,
    /// The original model, when calibrated in place.
    pub backup: Option<PathBuf>,
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

/// The one-sided 95 % upper confidence bound (Clopper–Pearson) on the share of new real faces
/// that a threshold calls FAKE, having called `called` of `faces` such faces FAKE: the rate at
/// which seeing so few alarms had a 5 % chance. It holds for faces drawn as these were; faces of
/// one camera or person vary together, so the truth on another site can be higher still.
pub fn false_alarm_bound(called: usize, faces: usize) -> f64 {
    if called >= faces {
        return 1.0;
    }
    let (k, n) = (called as f64, faces as f64);
    // ln P(X ≤ k) for X ~ Binomial(n, p), summed in logs: n·ln(1 − p) alone underflows f64 once
    // n is in the thousands.
    let ln_cdf = |p: f64| {
        let (lp, lq) = (p.ln(), (-p).ln_1p());
        let mut ln_choose = 0.0;
        let terms: Vec<f64> = (0..=called)
            .map(|i| {
                let i = i as f64;
                if i > 0.0 {
                    ln_choose += ((n - i + 1.0) / i).ln();
                }
                ln_choose + i * lp + (n - i) * lq
            })
            .collect();
        let top = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
    };
    // P(X ≤ k) falls as p grows: bisect for the p where it is 5 %.
    let (mut lo, mut hi) = (k / n, 1.0);
    for _ in 0..64 {
        let mid = (lo + hi) / 2.0;
        if ln_cdf(mid) > 0.05f64.ln() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The faces of one image that a measurement counts, with their index in the image: the largest
/// (one per image, as DeepfakeBench scores frames), or all.
pub fn chosen_faces(faces: Vec<FaceReport>, all: bool) -> Vec<(usize, FaceReport)> {
    let faces = faces.into_iter().enumerate();
    if all {
        faces.collect()
    } else {
        faces.max_by(|a, b| area(&a.1).total_cmp(&area(&b.1))).into_iter().collect()
    }
}

fn area(face: &FaceReport) -> f32 {
    let [x0, y0, x1, y1] = face.bbox;
    (x1 - x0).max(0.0) * (y1 - y0).max(0.0)
}

/// Scores the real faces of `request` with `pipeline` (loaded with `request.model`), sets the
/// threshold and writes the model. `progress` gets a line every 100 images.
pub fn calibrate(
    pipeline: &Pipeline,
    request: &Request,
    mut progress: impl FnMut(&str),
) -> Result<Calibration> {
    let classifier = pipeline.classifier.as_ref().context("no classifier loaded")?;
    let (mut p, mut no_face, mut unreadable) = (vec![], 0, vec![]);
    let images = expand_inputs(&request.real);
    let total = images.len();
    for (n, (path, listed)) in images.into_iter().enumerate() {
        if n > 0 && n % 100 == 0 {
            progress(&format!("{n} of {total} images, {} faces", p.len()));
        }
        match listed.and_then(|()| pipeline.analyse_file(&path)) {
            Ok((report, _)) => {
                let chosen = chosen_faces(report.faces, request.all_faces);
                no_face += usize::from(chosen.is_empty());
                p.extend(chosen.iter().filter_map(|(_, face)| face.p_fake));
            }
            Err(e) => unreadable.push((path, crate::error::one_line(&e))),
        }
    }
    if p.is_empty() {
        bail!(
            "no real face found: {no_face} images without a face, {} unreadable",
            unreadable.len()
        );
    }
    let rate = request.max_false_alarm;
    let threshold = threshold_for(&p, rate);
    let needed = FACES_PER_ALARM / rate;
    let warning = ((p.len() as f64) < needed).then(|| {
        format!(
            "only {} real faces: a false-alarm rate of {rate} is only estimated well from about {} \
             or more; on new faces it may differ widely",
            p.len(),
            if needed.is_finite() { format!("{needed:.0}") } else { "very many".into() }
        )
    });
    let meta = ModelMeta { threshold, ..classifier.meta.clone() };
    let (written, backup) = write_threshold(&request.model, request.out.as_deref(), &meta)?;
    let called_fake = p.iter().filter(|&&v| v >= threshold).count();
    Ok(Calibration {
        threshold,
        previous_threshold: classifier.meta.threshold,
        max_false_alarm: rate,
        faces: p.len(),
        called_fake,
        false_alarm_bound: false_alarm_bound(called_fake, p.len()),
        written,
        backup,
        no_face,
        unreadable,
        warning,
    })
}

impl Calibration {
    /// The lines for stderr: each unreadable image with its cause, then the warning if any.
    pub fn notices(&self) -> Vec<String> {
        let skipped =
            self.unreadable.iter().map(|(p, cause)| format!("skipped {}: {cause}", p.display()));
        skipped.chain(self.warning.iter().map(|w| format!("warning: {w}"))).collect()
    }
}

/// The summary both command lines print on stdout.
impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "threshold {:.4} (was {:.4}): {} of {} real faces called FAKE ({:.1} %, at most {:.1} % \
             asked; on new faces like these at most {:.1} %, with 95 % confidence); {} images \
             without a face, {} unreadable",
            self.threshold,
            self.previous_threshold,
            self.called_fake,
            self.faces,
            100.0 * self.called_fake as f64 / self.faces as f64,
            100.0 * self.max_false_alarm,
            100.0 * self.false_alarm_bound,
            self.no_face,
            self.unreadable.len()
        )?;
        write!(f, "written: {}", self.written.display())?;
        if let Some(backup) = &self.backup {
            write!(f, " (the original kept as {})", backup.display())?;
        }
        Ok(())
    }
}

/// The backup of a model calibrated in place: `classifier.onnx` → `classifier.bak.onnx`, so the
/// backup still loads as a model and a `.tflite`'s sidecar has the matching `classifier.bak.json`.
pub fn backup_path(model: &Path) -> PathBuf {
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match model.extension() {
        Some(ext) => format!("{stem}.bak.{}", ext.to_string_lossy()),
        None => format!("{stem}.bak"),
    };
    model.with_file_name(name)
}

/// Writes `model` with `meta` to `out`, or in place keeping the original (and its sidecar) as
/// [`backup_path`]. An ONNX file that carries its metadata as a property gets the property
/// rewritten; otherwise (TFLite, or a model from elsewhere) the sidecar `.json` is written beside
/// the output. Returns the model written and the backup, if one was made.
pub fn write_threshold(
    model: &Path,
    out: Option<&Path>,
    meta: &ModelMeta,
) -> Result<(PathBuf, Option<PathBuf>)> {
    let name = model.display();
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {name}"))?;
    let in_file = super::model::load(model)
        .with_context(|| format!("{name}"))?
        .properties
        .contains_key(META_KEY);
    let (target, backup) = match out {
        Some(out) => (out.to_path_buf(), None),
        None => {
            let backup = backup_path(model);
            write(&backup, &bytes)?;
            if !in_file {
                let sidecar = sidecar_path(model);
                let text = std::fs::read(&sidecar)
                    .with_context(|| format!("cannot back up {}", sidecar.display()))?;
                write(&sidecar_path(&backup), &text)?;
            }
            (model.to_path_buf(), Some(backup))
        }
    };
    if in_file {
        let rewritten = super::onnx::with_meta(&bytes, &serde_json::to_string(meta)?)?;
        write(&target, &rewritten)?;
    } else {
        if target != model {
            write(&target, &bytes)?;
        }
        write(&sidecar_path(&target), serde_json::to_string_pretty(meta)?.as_bytes())?;
    }
    Ok((target, backup))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| Ok(std::fs::write(tmp, bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::classify::{Label, OutputKind};

    /// Clopper–Pearson's bound against its closed form at no alarm (1 − 0.05^(1/n)), the normal
    /// approximation where it holds, and its edges.
    #[test]
    fn the_false_alarm_bound_is_clopper_pearsons() {
        for n in [1usize, 35, 300] {
            let exact = 1.0 - 0.05f64.powf(1.0 / n as f64);
            assert!((false_alarm_bound(0, n) - exact).abs() < 1e-9, "{n}");
        }
        // 0 of 35: the "rule of three" says about 3/35.
        assert!((false_alarm_bound(0, 35) - 0.0820).abs() < 1e-3);
        // 1,000 of 100,000: 1 % plus 1.645 standard errors, give or take the skew.
        let normal = 0.01 + 1.645 * (0.01f64 * 0.99 / 100_000.0).sqrt();
        let bound = false_alarm_bound(1000, 100_000);
        assert!(bound > 0.01 && (bound - normal).abs() < 2e-4, "{bound} against {normal}");
        assert!(false_alarm_bound(1, 35) > false_alarm_bound(0, 35));
        assert!(false_alarm_bound(1, 350) < false_alarm_bound(1, 35));
        assert_eq!(false_alarm_bound(5, 5), 1.0);
    }

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

    #[test]
    fn the_largest_face_is_chosen_unless_all_are_asked_for() {
        let face = |bbox: [f32; 4]| FaceReport {
            bbox,
            score: 0.9,
            keypoints: vec![],
            p_fake: Some(0.5),
            label: None,
        };
        let faces = vec![face([0.0, 0.0, 10.0, 10.0]), face([5.0, 5.0, 30.0, 20.0])];
        let largest = chosen_faces(faces.clone(), false);
        assert_eq!(largest.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        assert_eq!(chosen_faces(faces, true).len(), 2);
        assert!(chosen_faces(vec![], false).is_empty());
    }

    /// A model without the metadata property (here the fetched detector, a `.tflite`) is
    /// calibrated through its sidecar: in place, both the model and the sidecar are backed up
    /// and the new threshold lands in the sidecar; with an output, the input is untouched.
    #[test]
    fn a_model_without_the_property_gets_its_sidecar_rewritten() {
        let tmp = testkit::Scratch::new("calibrate-sidecar");
        let model = tmp.write(
            "site.tflite",
            std::fs::read(testkit::model("face_detection_short_range.tflite")).expect("detector"),
        );
        let meta = ModelMeta {
            labels: [Label::Real, Label::Fake],
            mean: [0.5; 3],
            std: [0.5; 3],
            output: OutputKind::Probability,
            threshold: 0.5,
        };
        let old = serde_json::to_string(&meta).expect("JSON");
        tmp.write("site.json", &old);
        let read = |path: &Path| -> ModelMeta {
            serde_json::from_slice(&std::fs::read(path).expect("sidecar")).expect("metadata")
        };

        let (written, backup) =
            write_threshold(&model, None, &ModelMeta { threshold: 0.8, ..meta.clone() })
                .expect("in place");
        assert_eq!(written, model);
        assert_eq!(backup.as_deref(), Some(tmp.join("site.bak.tflite").as_path()));
        assert_eq!(read(&tmp.join("site.json")).threshold, 0.8);
        assert_eq!(read(&tmp.join("site.bak.json")).threshold, 0.5);
        assert_eq!(
            std::fs::read(tmp.join("site.bak.tflite")).expect("backup"),
            std::fs::read(&model).expect("model")
        );

        let out = tmp.join("other.tflite");
        let (written, backup) =
            write_threshold(&model, Some(&out), &ModelMeta { threshold: 0.3, ..meta })
                .expect("to a new file");
        assert_eq!((written, backup), (out, None));
        assert_eq!(read(&tmp.join("other.json")).threshold, 0.3);
        assert_eq!(read(&tmp.join("site.json")).threshold, 0.8);
    }

    #[test]
    fn backups_keep_the_extension() {
        assert_eq!(backup_path(Path::new("m/classifier.onnx")), Path::new("m/classifier.bak.onnx"));
        assert_eq!(backup_path(Path::new("x.tflite")), Path::new("x.bak.tflite"));
        assert_eq!(backup_path(Path::new("model")), Path::new("model.bak"));
    }
}
