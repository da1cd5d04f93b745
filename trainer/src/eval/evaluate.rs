//! `trainer eval`: a classifier scored on labelled folders, each face found and cut by `edge`'s own
//! detector and crop, with the figures DeepfakeBench reports (FAKE is the positive class, one
//! score per face): ROC AUC, EER, average precision, and at the model's threshold the accuracy and
//! the share of real faces called FAKE. Each `--data` root is reported on its own and pooled.

use super::metrics::{
    auc, auc_interval, average_precision, eer, pr_curve, roc, Confusion, AUC_DRAWS,
};
use super::plot;
use super::shortcuts::{self, CueAudit, Cues};
use crate::data::faces::centre_crop;
use crate::data::folders::class_folders;
use anyhow::{bail, Context, Result};
use edge::infer::classify::Label;
use edge::input::files::expand_inputs;
use edge::{DetectorConfig, FaceReport, Pipeline};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to evaluate, and how faces are cut (as `edge --file` does by default).
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub model: PathBuf,
    pub data: Vec<PathBuf>,
    pub detector: PathBuf,
    pub margin: f32,
    pub min_score: f32,
    /// Score every face of an image; by default only the largest, as DeepfakeBench scores one
    /// face per frame.
    pub all_faces: bool,
    /// Replaces the threshold stored in the model.
    pub threshold: Option<f32>,
    /// The images are face crops already (as `trainer fakes` writes them): each is one face,
    /// scored whole (its centre square resized to the model's input), with no detection.
    pub crops: bool,
}

/// One scored face.
#[derive(Clone, Debug, Serialize)]
pub struct ScoredFace {
    /// The `--data` root it came from (index into `EvalConfig::data`).
    pub root: usize,
    pub file: PathBuf,
    /// The face's rank in the image by detector order (0 is the largest with one face per image).
    pub face: usize,
    pub bbox: [f32; 4],
    pub label: Label,
    pub p_fake: f32,
    /// Trivial properties of the face, for the shortcut audit.
    pub cues: Cues,
}

/// The figures of one set of faces. Those that need both classes are `None` without one.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub real_faces: usize,
    pub fake_faces: usize,
    pub auc: Option<f64>,
    /// Its 95 % bootstrap interval over the faces (`metrics::auc_interval`).
    pub auc_interval: Option<[f64; 2]>,
    /// Equal error rate and its threshold.
    pub eer: Option<f64>,
    pub eer_threshold: Option<f32>,
    pub average_precision: Option<f64>,
    /// At the model's threshold.
    pub accuracy: f64,
    /// Share of the real faces called FAKE at the model's threshold.
    pub false_alarm_rate: Option<f64>,
    /// Share of the fake faces called FAKE at the model's threshold.
    pub fake_caught_rate: Option<f64>,
    pub confusion: Confusion,
}

impl Figures {
    pub fn of(faces: &[&ScoredFace], threshold: f32) -> Figures {
        let p: Vec<f32> = faces.iter().map(|f| f.p_fake).collect();
        let fake: Vec<bool> = faces.iter().map(|f| f.label == Label::Fake).collect();
        let fake_faces = fake.iter().filter(|&&f| f).count();
        let real_faces = fake.len() - fake_faces;
        let both = real_faces > 0 && fake_faces > 0;
        let confusion = Confusion::at(&p, &fake, threshold);
        let share = |n: usize, of: usize| (of > 0).then(|| n as f64 / of as f64);
        let eer = eer(&p, &fake);
        Figures {
            real_faces,
            fake_faces,
            auc: both.then(|| auc(&p, &fake)),
            auc_interval: auc_interval(&p, &fake, AUC_DRAWS).map(|(lo, hi)| [lo, hi]),
            eer: eer.map(|e| e.0),
            eer_threshold: eer.map(|e| e.1),
            average_precision: if both { average_precision(&p, &fake) } else { None },
            accuracy: confusion.accuracy(),
            false_alarm_rate: share(confusion.false_fake, real_faces),
            fake_caught_rate: share(confusion.true_fake, fake_faces),
            confusion,
        }
    }
}

/// Everything an evaluation found.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub model: PathBuf,
    pub threshold: f32,
    pub all_faces: bool,
    /// The images were face crops, each scored whole.
    pub crops: bool,
    pub faces: Vec<ScoredFace>,
    /// Per root, in `--data` order: (root, its figures).
    pub roots: Vec<(PathBuf, Figures)>,
    pub pooled: Figures,
    /// The pooled faces' shortcut audit (`None` with one class only).
    pub audit: Option<Vec<CueAudit>>,
    /// Images in which the detector found no face (counted, never silently dropped).
    pub no_face: Vec<PathBuf>,
    /// Images that could not be read or decoded, with the cause.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Scores every image under the class folders of each root. `progress` gets a line now and then
/// for big folders. Fails when a root has no class folder or no image at all was scored.
pub fn evaluate(cfg: &EvalConfig, mut progress: impl FnMut(&str)) -> Result<Evaluation> {
    let detector = DetectorConfig { min_score: cfg.min_score, ..DetectorConfig::default() };
    let pipeline =
        Pipeline::load(&cfg.detector, detector, Some(&cfg.model), cfg.margin, cfg.threshold)?;
    let threshold = pipeline
        .threshold()
        .with_context(|| format!("{}: no threshold in the model", cfg.model.display()))?;
    let mut images = vec![];
    for (root_index, root) in cfg.data.iter().enumerate() {
        if !root.is_dir() {
            bail!("{}: no such folder", root.display());
        }
        let folders = class_folders(root);
        if folders.is_empty() {
            bail!(
                "{}: no class folders (training_real/ and training_fake/, or real/ and fake/)",
                root.display()
            );
        }
        for (folder, label) in folders {
            for (path, listed) in expand_inputs(&[folder]) {
                images.push((root_index, path, listed, label));
            }
        }
    }
    let scored = score(&pipeline, images, cfg, &mut progress)?;
    let mut eval = Evaluation {
        model: cfg.model.clone(),
        threshold,
        all_faces: cfg.all_faces,
        crops: cfg.crops,
        faces: scored.faces,
        roots: vec![],
        pooled: Figures::of(&[], threshold),
        audit: None,
        no_face: scored.no_face,
        unreadable: scored.unreadable,
    };
    if eval.faces.is_empty() {
        bail!(
            "no face to score: {} images without a face, {} unreadable",
            eval.no_face.len(),
            eval.unreadable.len()
        );
    }
    for (i, root) in cfg.data.iter().enumerate() {
        let faces: Vec<&ScoredFace> = eval.faces.iter().filter(|f| f.root == i).collect();
        eval.roots.push((root.clone(), Figures::of(&faces, threshold)));
    }
    eval.pooled = Figures::of(&eval.faces.iter().collect::<Vec<_>>(), threshold);
    let cues: Vec<Cues> = eval.faces.iter().map(|f| f.cues).collect();
    let p: Vec<f32> = eval.faces.iter().map(|f| f.p_fake).collect();
    let fake: Vec<bool> = eval.faces.iter().map(|f| f.label == Label::Fake).collect();
    eval.audit = eval.pooled.auc.and_then(|auc| shortcuts::audit(&cues, &p, &fake, auc));
    Ok(eval)
}

/// The faces of a set of images, and the images that gave none.
pub struct Scored {
    pub faces: Vec<ScoredFace>,
    pub no_face: Vec<PathBuf>,
    pub unreadable: Vec<(PathBuf, String)>,
}

/// One image to score: its root's index, its path (or why it could not be listed), its label.
type Image = (usize, PathBuf, Result<()>, Label);

/// Runs each image through `pipeline`, keeping the largest face (or every face), with its cues.
fn score(
    pipeline: &Pipeline,
    images: Vec<Image>,
    cfg: &EvalConfig,
    progress: &mut impl FnMut(&str),
) -> Result<Scored> {
    let size = pipeline.crop_size();
    let mut scored = Scored { faces: vec![], no_face: vec![], unreadable: vec![] };
    let total = images.len();
    for (n, (root, path, listed, label)) in images.into_iter().enumerate() {
        if n > 0 && n % 100 == 0 {
            progress(&format!("{n} of {total} images, {} faces", scored.faces.len()));
        }
        // The file is read once: decoded from memory, and its header kept for the JPEG cue.
        let analysed = listed.and_then(|()| {
            let bytes = edge::input::files::read_regular(&path)?;
            let img = edge::input::decode::from_memory(&bytes)?;
            let faces = if cfg.crops {
                vec![whole_image_as_face(pipeline, &img)?]
            } else {
                pipeline.analyse(&img, &mut edge::Timings::default())?
            };
            Ok((faces, img, bytes))
        });
        let (faces, img, bytes) = match analysed {
            Ok(analysed) => analysed,
            Err(e) => {
                scored.unreadable.push((path, edge::error::one_line(&e)));
                continue;
            }
        };
        let chosen = edge::infer::calibrate::chosen_faces(faces, cfg.all_faces);
        if chosen.is_empty() {
            scored.no_face.push(path);
            continue;
        }
        for (face, report) in chosen {
            let p_fake = report.p_fake.context("the pipeline has a classifier")?;
            let [x0, y0, x1, y1] = report.bbox;
            let bbox = edge::BBox { x0, y0, x1, y1 };
            let crop = if cfg.crops {
                centre_crop(&img, size)
            } else {
                edge::infer::crop::face(&img, &bbox, pipeline.margin, size)
            };
            let cues = Cues::of(&crop, report.bbox, &bytes);
            scored.faces.push(ScoredFace {
                root,
                file: path.clone(),
                face,
                bbox: report.bbox,
                label,
                p_fake,
                cues,
            });
        }
    }
    Ok(scored)
}

/// A face crop scored whole: its centre square at the model's input size, as `--no-face centre`
/// trains on it.
fn whole_image_as_face(pipeline: &Pipeline, img: &image::RgbImage) -> Result<FaceReport> {
    let classifier = pipeline.classifier.as_ref().context("no classifier loaded")?;
    let p = classifier.p_fake(&centre_crop(img, pipeline.crop_size()))?;
    Ok(FaceReport {
        bbox: [0.0, 0.0, img.width() as f32, img.height() as f32],
        score: 1.0,
        keypoints: vec![],
        p_fake: Some(p),
        label: None,
    })
}

/// `faces.csv`: one line per scored face, so anyone can recompute every figure.
pub fn faces_csv(eval: &Evaluation) -> String {
    let mut csv = String::from(
        "root,file,face,x0,y0,x1,y1,label,p_fake,sharpness,jpeg_quality,face_size,brightness\n",
    );
    for f in &eval.faces {
        let [x0, y0, x1, y1] = f.bbox;
        let c = f.cues;
        csv.push_str(&format!(
            "{},{},{},{x0:.1},{y0:.1},{x1:.1},{y1:.1},{},{},{:.2},{:.1},{:.1},{:.2}\n",
            f.root,
            csv_field(&f.file.display().to_string()),
            f.face,
            label_name(f.label),
            f.p_fake,
            c.sharpness,
            c.jpeg_quality,
            c.face_size,
            c.brightness
        ));
    }
    csv
}

fn label_name(label: Label) -> &'static str {
    match label {
        Label::Real => "REAL",
        Label::Fake => "FAKE",
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `faces.csv`, `summary.json`, `summary.md` and the charts (`roc.png`, `pr.png`,
/// `scores.png`: the two classes' p(FAKE) histograms) into `out`.
pub fn write(eval: &Evaluation, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let put = |name: &str, text: String| -> Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    put("faces.csv", faces_csv(eval))?;
    #[derive(Serialize)]
    struct Summary<'a> {
        model: &'a Path,
        threshold: f32,
        all_faces: bool,
        crops: bool,
        pooled: &'a Figures,
        shortcut_audit: &'a Option<Vec<CueAudit>>,
        roots: Vec<(&'a Path, &'a Figures)>,
        no_face: &'a [PathBuf],
        unreadable: &'a [(PathBuf, String)],
    }
    let summary = Summary {
        model: &eval.model,
        threshold: eval.threshold,
        all_faces: eval.all_faces,
        crops: eval.crops,
        pooled: &eval.pooled,
        shortcut_audit: &eval.audit,
        roots: eval.roots.iter().map(|(r, f)| (r.as_path(), f)).collect(),
        no_face: &eval.no_face,
        unreadable: &eval.unreadable,
    };
    put("summary.json", serde_json::to_string_pretty(&summary)?)?;
    put("summary.md", markdown(eval))?;
    charts(eval, out)
}

/// The pooled ROC and precision-recall curves (when both classes are present) and the score
/// histograms.
fn charts(eval: &Evaluation, out: &Path) -> Result<()> {
    let save = |name: &str, img: image::RgbImage| -> Result<()> {
        let path = out.join(name);
        img.save(&path).with_context(|| format!("cannot write {}", path.display()))
    };
    let p: Vec<f32> = eval.faces.iter().map(|f| f.p_fake).collect();
    let fake: Vec<bool> = eval.faces.iter().map(|f| f.label == Label::Fake).collect();
    if let Some(area) = eval.pooled.auc {
        let curve = roc(&p, &fake).iter().map(|&(fpr, tpr, _)| (fpr, tpr)).collect();
        let chance = vec![(0.0, 0.0), (1.0, 1.0)];
        let title = format!("ROC (AUC {area:.3})");
        let series = [("model", curve), ("chance", chance)];
        save(
            "roc.png",
            plot::lines(&title, "false positive rate", &series, (0.0, 1.0), (0.0, 1.0)),
        )?;
    }
    if let (Some(ap), Some(curve)) = (eval.pooled.average_precision, pr_curve(&p, &fake)) {
        let title = format!("Precision-recall of FAKE (AP {ap:.3})");
        save("pr.png", plot::lines(&title, "recall", &[("model", curve)], (0.0, 1.0), (0.0, 1.0)))?;
    }
    let real = histogram(p.iter().zip(&fake).filter(|(_, &f)| !f).map(|(&p, _)| p));
    let fakes = histogram(p.iter().zip(&fake).filter(|(_, &f)| f).map(|(&p, _)| p));
    let top = real.iter().chain(&fakes).map(|&(_, y)| y).fold(0.1, f64::max);
    let series = [("real faces", real), ("fake faces", fakes)];
    let title = format!("p(FAKE) by class (threshold {:.3})", eval.threshold);
    save("scores.png", plot::lines(&title, "p(FAKE)", &series, (0.0, 1.0), (0.0, top)))
}

/// The share of `scores` in each twentieth of [0, 1], as a step line.
fn histogram(scores: impl Iterator<Item = f32>) -> Vec<(f64, f64)> {
    const BINS: usize = 20;
    let mut counts = [0usize; BINS];
    for p in scores {
        counts[((p.clamp(0.0, 1.0) * BINS as f32) as usize).min(BINS - 1)] += 1;
    }
    let total = counts.iter().sum::<usize>().max(1) as f64;
    let mut line = vec![];
    for (i, &n) in counts.iter().enumerate() {
        let share = n as f64 / total;
        line.push((i as f64 / BINS as f64, share));
        line.push(((i + 1) as f64 / BINS as f64, share));
    }
    line
}

/// The summary as a Markdown table, one row per root and the pooled row.
pub fn markdown(eval: &Evaluation) -> String {
    let num = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let share = |v: Option<f64>, n: usize| match v {
        Some(v) => format!("{:.1} % ({n})", v * 100.0),
        None => "n/a".into(),
    };
    let row = |name: &str, f: &Figures| {
        let auc = match (f.auc, f.auc_interval) {
            (Some(auc), Some([lo, hi])) => format!("{auc:.4} ({lo:.2}–{hi:.2})"),
            (auc, _) => num(auc),
        };
        format!(
            "| {name} | {} | {} | {auc} | {} | {} | {:.4} | {} | {} |\n",
            f.real_faces,
            f.fake_faces,
            num(f.eer),
            num(f.average_precision),
            f.accuracy,
            share(f.false_alarm_rate, f.confusion.false_fake),
            share(f.fake_caught_rate, f.confusion.true_fake),
        )
    };
    let mut md = format!(
        "# Evaluation of {}\n\nFAKE is the positive class; {}; threshold {:.4}.\n\n\
         | data | real faces | fake faces | ROC AUC (95 % interval) | EER | AP | accuracy | real called FAKE | fakes caught |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        eval.model.display(),
        match (eval.crops, eval.all_faces) {
            (true, _) => "each image a face crop, scored whole",
            (false, true) => "every face per image",
            (false, false) => "the largest face per image",
        },
        eval.threshold
    );
    for (root, figures) in &eval.roots {
        md.push_str(&row(&root.display().to_string(), figures));
    }
    if eval.roots.len() > 1 {
        md.push_str(&row("**pooled**", &eval.pooled));
    }
    if eval.pooled.auc.is_none() {
        md.push_str("\nOnly one class was found: ROC AUC, EER and AP are undefined.\n");
    }
    if let Some(audit) = &eval.audit {
        md.push_str(&audit_markdown(audit, eval.pooled.auc.unwrap_or(0.5)));
    }
    md.push_str(&format!(
        "\nImages without a face: {}; unreadable: {} (both listed in `summary.json`). Every face with \
         its p(FAKE): `faces.csv`.\n",
        eval.no_face.len(),
        eval.unreadable.len()
    ));
    md
}

/// The shortcut audit's table, and a warning when a cue is flagged.
fn audit_markdown(audit: &[CueAudit], model_auc: f64) -> String {
    let mut md = format!(
        "\n## Shortcut audit\n\nTrivial properties of the same faces as FAKE scores (AUC below 0.5: \
         fakes have less of it), and Spearman's rank correlation of the model's p(FAKE) with each. The \
         model's AUC is {model_auc:.4}.\n\n| cue | AUC | correlation | |\n| --- | ---: | ---: | --- |\n"
    );
    for a in audit {
        let flag = if a.flagged { "**flagged**" } else { "" };
        md.push_str(&format!("| {} | {:.4} | {:+.3} | {flag} |\n", a.cue, a.auc, a.correlation));
    }
    let flagged: Vec<&str> = audit.iter().filter(|a| a.flagged).map(|a| a.cue).collect();
    if !flagged.is_empty() {
        md.push_str(&format!(
            "\n**Warning:** flagged: {}. Each is as good a FAKE score as the model (its AUC either \
             way round within {} of the model's) or the model's score follows it (|correlation| ≥ \
             {}): on this data the model is not shown to be a detector.\n",
            flagged.join(", "),
            shortcuts::MATCH_MARGIN,
            shortcuts::TRACKING
        ));
    }
    md
}
