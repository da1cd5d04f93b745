//! One training run, start to finish: data, face crops, split, training, reports, export, and the
//! check that the exported models give burn's probabilities.

use crate::data::faces::{Cropped, Cropper, NoFace};
use crate::data::folders::{self, Sample};
use crate::eval::metrics::{threshold, Metrics, ThresholdRule};
use crate::eval::report;
use crate::export::{self, parity::Parity};
use crate::fakes::kind::{FakeKind, Sources, GENERATORS};
use crate::files::{self, hex};
use crate::resume::changed_settings;
use crate::train::checkpoint::Checkpoints;
use crate::train::{self, fit::real_faces, Item, TrainConfig};
use anyhow::{bail, ensure, Context, Result};
use edge::infer::classify::{sidecar_path, Label, ModelMeta, OutputKind};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// ImageNet statistics, which torchvision's pretrained MobileNets expect.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// What the trainer's models take and give (the threshold is set once training has chosen it).
pub fn model_meta() -> ModelMeta {
    ModelMeta {
        labels: [Label::Real, Label::Fake],
        mean: MEAN,
        std: STD,
        output: OutputKind::Probability,
        threshold: 0.5,
    }
}

/// Everything a run depends on; saved as `config.json` so the run can be repeated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub data: Vec<PathBuf>,
    pub out: PathBuf,
    pub detector: PathBuf,
    pub cache: PathBuf,
    pub no_face: NoFace,
    pub margin: f32,
    pub min_score: f32,
    pub val_fraction: f64,
    /// How the decision threshold is chosen on validation (run folders made before the rule was
    /// a setting used Youden's J).
    #[serde(default)]
    pub threshold_rule: ThresholdRule,
    pub train: TrainConfig,
}

/// What a run produced.
pub struct RunSummary {
    pub metrics: Metrics,
    pub best_epoch: usize,
    pub onnx: PathBuf,
    pub tflite: PathBuf,
    pub parity: Parity,
}

#[derive(Serialize)]
struct SplitEntry<'a> {
    file: &'a Path,
    label: Label,
    subset: &'static str,
    faces: usize,
    /// SHA-256 of the photo's face crops (pixels and keypoints): a resumed run checks that it
    /// trains on the very crops the run began with, which a changed detector file would alter.
    crops: String,
}

/// Runs everything; `log` receives the progress lines.
pub fn run(cfg: &RunConfig, log: impl FnMut(&str)) -> Result<RunSummary> {
    run_from(cfg, false, log)
}

/// Continues the run in `cfg.out` from its latest checkpoint, to the result the uninterrupted run
/// gives. `cfg` must be the run's saved configuration (`saved_config`), changed at most in the
/// settings `checkpoint::RESUMABLE` names.
pub fn resume(cfg: &RunConfig, log: impl FnMut(&str)) -> Result<RunSummary> {
    run_from(cfg, true, log)
}

/// The configuration saved in a run folder.
pub fn saved_config(out: &Path) -> Result<RunConfig> {
    let path = out.join(CONFIG);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: no run configuration to resume", path.display()))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a run configuration", path.display()))?;
    // Runs saved before the kinds of fake existed said `"sbi": true` for `"fakes": ["sbi"]`.
    if let Some(train) = value.get_mut("train").and_then(|t| t.as_object_mut()) {
        if train.remove("sbi") == Some(serde_json::Value::Bool(true))
            && !train.contains_key("fakes")
        {
            train.insert("fakes".into(), serde_json::json!(["sbi"]));
        }
    }
    serde_json::from_value(value)
        .with_context(|| format!("{}: not a run configuration", path.display()))
}

const CONFIG: &str = "config.json";
const SPLIT: &str = "split.json";

fn run_from(cfg: &RunConfig, resume: bool, mut log: impl FnMut(&str)) -> Result<RunSummary> {
    cfg.train.check()?;
    crate::data::faces::check_cache(&cfg.cache)?;
    // Before any work: a folder that cannot be written fails now, not after training.
    edge::output::check_writable(&cfg.out).context("--out")?;
    let checkpoints = Checkpoints::new(&cfg.out, resume);
    if resume {
        let saved = saved_config(&cfg.out)?;
        if let Some((name, was, now)) = changed_settings(&saved, cfg)?.first() {
            bail!(
                "{}: the run was made with {name} = {was}, not {now}",
                cfg.out.join(CONFIG).display()
            );
        }
        log(&format!("resuming from {}", checkpoints.state_path().display()));
    } else {
        checkpoints.clear()?;
    }
    files::write(&cfg.out.join(CONFIG), serde_json::to_string_pretty(cfg)?)?;

    let data = folders::scan(&cfg.data)?;
    for (i, root) in cfg.data.iter().enumerate() {
        log(&format!(
            "{}: {} real, {} fake",
            root.display(),
            data.count(i, Label::Real),
            data.count(i, Label::Fake)
        ));
    }
    if !data.duplicates.is_empty() {
        log(&format!("{} exact duplicates left out", data.duplicates.len()));
    }
    for (path, why) in &data.unreadable {
        log(&format!("skipped {}: {why}", path.display()));
    }

    let cropper = Cropper::open(
        &cfg.detector,
        cfg.min_score,
        cfg.margin,
        cfg.train.input_size,
        cfg.no_face,
        &cfg.cache,
    )?;
    let mut cropped: Vec<(&Sample, Item)> = vec![];
    let (mut no_face, mut failed) = (0, 0);
    for sample in &data.samples {
        match cropper.crop(sample) {
            Ok(Cropped::Faces(faces)) => cropped.extend(faces.into_iter().map(|face| {
                (
                    sample,
                    Item {
                        image: face.image,
                        keypoints: face.keypoints,
                        fake: sample.label == Label::Fake,
                    },
                )
            })),
            Ok(Cropped::NoFace) => {
                no_face += 1;
                log(&format!(
                    "no face in {}: skipped (--no-face centre uses the centre)",
                    sample.path.display()
                ));
            }
            Err(e) => {
                failed += 1;
                log(&format!("skipped {}: {e:#}", sample.path.display()));
            }
        }
    }
    log(&format!(
        "{} face crops ({no_face} photos without a face, {failed} unreadable; {} photos from the crop cache)",
        cropped.len(),
        cropper.cache_hits.get()
    ));

    let (train_items, mut val_items, mut val_sources, split) =
        split(cropped, cfg.val_fraction, cfg.train.seed);
    let split = serde_json::to_string_pretty(&split)?;
    let split_path = cfg.out.join(SPLIT);
    if resume {
        // The checkpoints only continue the same training and validation faces.
        let before = std::fs::read_to_string(&split_path).with_context(|| {
            format!("{}: cannot read the resumed run's split", split_path.display())
        })?;
        ensure!(
            before == split,
            "{}: the data or its face crops changed since the run began (the split differs); start \
             a new run",
            split_path.display()
        );
    }
    files::write(&split_path, split)?;
    let real_train = train_items.iter().filter(|i| !i.fake).count();
    let fake_train = train_items.len() - real_train;
    let kinds = &cfg.train.fakes;
    if fake_train == 0 && kinds.is_empty() {
        bail!(
            "no fake faces to train on: add fake photos, or let --fakes make them from the real \
             ones"
        );
    }
    if real_train == 0 {
        bail!("no real faces to train on");
    }
    // Fixed fakes of each kind from the validation reals, so every epoch is scored on the same set.
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.train.seed ^ 0x5b1);
    let settings = cfg.train.fake_settings();
    let mut made = vec![];
    // The generators of reconstructions learn from the training faces; swaps are between
    // validation faces only, so no training face shows in a validation fake.
    let generators = cfg.cache.join(GENERATORS);
    let train_sources =
        Sources::new(kinds, real_faces(&train_items), cfg.train.seed, Some(&generators), &mut log)?;
    let sources = Sources {
        donors: Sources::donors_of(real_faces(&val_items)),
        generators: train_sources.generators.clone(),
        denoisers: train_sources.denoisers.clone(),
    };
    for &kind in kinds {
        for (item, source) in val_items.iter().zip(&val_sources).filter(|(i, _)| !i.fake) {
            let k = item.keypoints.as_ref();
            let image = kind.make(&item.image, k, &sources, &settings, &mut rng)?;
            made.push((
                Item { image, keypoints: None, fake: true },
                Source { made: Some(kind), ..source.clone() },
            ));
        }
    }
    let (made, made_sources): (Vec<Item>, Vec<Source>) = made.into_iter().unzip();
    val_items.extend(made);
    val_sources.extend(made_sources);
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    log(&format!(
        "train: {real_train} real, {fake_train} fake{}; validation: {} real, {} fake",
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" (+ a fresh fake of each kind per real face each epoch: {})", names.join(", "))
        },
        val_items.iter().filter(|i| !i.fake).count(),
        val_items.iter().filter(|i| i.fake).count()
    ));
    if cfg.train.balance_classes {
        let [real, fake] = crate::train::fit::class_weights(&train_items, &cfg.train);
        log(&format!("loss weights: a real face {real:.3}, a fake {fake:.3} (--balance-classes)"));
    }
    if cfg.train.xray > 0.0 {
        let blended: Vec<&str> = (cfg.train.fakes.iter())
            .filter(|k| matches!(k, FakeKind::Sbi | FakeKind::Swap))
            .map(|k| k.name())
            .collect();
        log(&if blended.is_empty() {
            "X-ray head: no blended kind (sbi, swap) is made, so it learns only that no face holds a \
             boundary"
                .to_string()
        } else {
            let weight = cfg.train.xray;
            format!("X-ray head: the blend boundaries of {}, weighed {weight}", blended.join(", "))
        });
    }

    let mut meta = model_meta();
    let epochs = cfg.train.epochs;
    let trained = train::train(
        &train_items,
        &val_items,
        &cfg.train,
        &meta,
        &train_sources,
        Some(&checkpoints),
        |s| {
            log(&format!(
            "epoch {}/{epochs}: loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} auc {:.3} | {:.1} img/s",
            s.epoch, s.train_loss, s.train_accuracy, s.val_loss, s.val_accuracy, s.val_auc, s.images_per_second
        ))
        },
    )?;
    let val_fake: Vec<bool> = val_items.iter().map(|i| i.fake).collect();
    meta.threshold = threshold(&trained.val_p_fake, &val_fake, cfg.threshold_rule);
    let metrics = Metrics::new(&trained.val_p_fake, &val_fake, meta.threshold);

    let onnx_bytes = export::onnx::write(&trained.model, cfg.train.input_size, &meta)?;
    let onnx = cfg.out.join("model.onnx");
    files::write(&onnx, &onnx_bytes)?;
    let tflite = cfg.out.join("model.tflite");
    files::write(&tflite, export::tflite::write(&onnx_bytes)?)?;
    files::write(&sidecar_path(&onnx), serde_json::to_string_pretty(&meta)?)?;
    let parity = export::parity::check_parity(&onnx, &tflite, &val_items, &trained.val_p_fake)?;
    log(&format!(
        "exported {} and {}: largest |p(FAKE) difference| to burn {:.2e} (ONNX), {:.2e} (TFLite) on {} images",
        onnx.display(),
        tflite.display(),
        parity.onnx_max_abs_diff,
        parity.tflite_max_abs_diff,
        parity.images
    ));
    write_validation_scores(
        &cfg.out,
        &val_sources,
        &val_fake,
        &trained.val_p_fake,
        meta.threshold,
    )?;
    report::write(&cfg.out, &trained, &metrics, cfg.threshold_rule, &parity, &val_fake)?;
    Ok(RunSummary { metrics, best_epoch: trained.best_epoch, onnx, tflite, parity })
}

/// Where a validation face comes from: its photo, its index among the photo's faces (from 1), and
/// the kind of fake made of that face, if it is one.
#[derive(Clone)]
struct Source {
    file: PathBuf,
    face: usize,
    made: Option<FakeKind>,
}

/// `validation.csv`: every validation face with its label, p(FAKE) and the label at `threshold`,
/// so that a user can see which photos the model gets wrong, or choose another threshold.
fn write_validation_scores(
    out: &Path,
    sources: &[Source],
    fake: &[bool],
    p_fake: &[f32],
    threshold: f32,
) -> Result<()> {
    let name = |f: bool| if f { "FAKE" } else { "REAL" };
    let mut csv = String::from("file,face,made,label,p_fake,called\n");
    for ((s, &f), &p) in sources.iter().zip(fake).zip(p_fake) {
        // A quoted field, so that commas in file names survive; `{p:?}` is the shortest form
        // that reads back as the same f32.
        let file = s.file.display().to_string().replace('"', "\"\"");
        csv += &format!(
            "\"{file}\",{},{},{},{p:?},{}\n",
            s.face,
            s.made.map_or("", FakeKind::name),
            name(f),
            name(p >= threshold)
        );
    }
    files::write(&out.join("validation.csv"), csv)
        .with_context(|| format!("cannot write {}", out.join("validation.csv").display()))
}

/// Stratified, deterministic split by photo (the faces of one photo stay together): per class,
/// photos ordered by content hash, shuffled by the seed, the first `fraction` of them (at least
/// one when the class has two or more photos) to validation.
fn split<'a>(
    cropped: Vec<(&'a Sample, Item)>,
    fraction: f64,
    seed: u64,
) -> (Vec<Item>, Vec<Item>, Vec<Source>, Vec<SplitEntry<'a>>) {
    let mut photos: std::collections::BTreeMap<&str, (&Sample, Vec<Item>)> = Default::default();
    for (sample, item) in cropped {
        photos.entry(sample.hash.as_str()).or_insert_with(|| (sample, vec![])).1.push(item);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut train, mut val, mut sources, mut entries) = (vec![], vec![], vec![], vec![]);
    for label in [Label::Real, Label::Fake] {
        let mut class: Vec<&(&Sample, Vec<Item>)> =
            photos.values().filter(|(s, _)| s.label == label).collect();
        class.shuffle(&mut rng);
        let n_val = if class.len() >= 2 {
            ((class.len() as f64 * fraction).round() as usize).max(1)
        } else {
            0
        };
        for (k, (sample, items)) in class.into_iter().enumerate() {
            let subset = if k < n_val { "validation" } else { "train" };
            entries.push(SplitEntry {
                file: &sample.path,
                label,
                subset,
                faces: items.len(),
                crops: crops_digest(items),
            });
            if k < n_val {
                val.extend(items.iter().cloned());
                sources.extend((1..=items.len()).map(|face| Source {
                    file: sample.path.clone(),
                    face,
                    made: None,
                }));
            } else {
                train.extend(items.iter().cloned())
            }
        }
    }
    (train, val, sources, entries)
}

fn crops_digest(items: &[Item]) -> String {
    let mut hash = Sha256::new();
    for item in items {
        hash.update(item.image.width().to_le_bytes());
        hash.update(item.image.height().to_le_bytes());
        hash.update(item.image.as_raw());
        for point in item.keypoints.iter().flatten().flatten() {
            hash.update(point.to_le_bytes());
        }
    }
    hex(&hash.finalize())
}
