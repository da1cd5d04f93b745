//! `trainer fakes`: the real faces of some folders and the fakes the trainer makes from them,
//! written as a labelled folder (`real/`, `fake/<kind>/`) that `trainer eval --crops` scores, so a
//! model can be measured on each kind of fake, and a user can see what the trainer trains on.

use super::kind::{FakeKind, FakeSettings, Sources, GENERATORS};
use crate::data::faces::{Cropped, Cropper, NoFace};
use crate::data::folders;
use anyhow::{bail, Context, Result};
use edge::output::write_atomically;
use edge::Label;
use image::RgbImage;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct FakesConfig {
    /// Roots as `trainer --data` takes them; only their real faces are used.
    pub data: Vec<PathBuf>,
    pub out: PathBuf,
    pub kinds: Vec<FakeKind>,
    pub settings: FakeSettings,
    /// Fakes of each kind per real face.
    pub per_face: usize,
    pub seed: u64,
    /// Side of the written crops.
    pub size: u32,
    pub detector: PathBuf,
    pub margin: f32,
    pub min_score: f32,
    pub cache: PathBuf,
}

/// What was written, and what was left out.
#[derive(Debug, Default)]
pub struct FakesWritten {
    pub real: usize,
    /// Fakes written of each kind, in `FakesConfig::kinds` order.
    pub fakes: Vec<(FakeKind, usize)>,
    pub no_face: Vec<PathBuf>,
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Crops every real face of `cfg.data` (through the crop cache, as training does) and writes it
/// with `per_face` fakes of each kind. Each fake's randomness is seeded by `seed`, the photo's
/// content and the face, so the same photos give the same fakes in any order.
pub fn write_fakes(cfg: &FakesConfig, mut log: impl FnMut(&str)) -> Result<FakesWritten> {
    if cfg.kinds.is_empty() {
        bail!("no kind of fake chosen");
    }
    for root in &cfg.data {
        if !root.is_dir() {
            bail!("{}: no such folder", root.display());
        }
    }
    if std::fs::read_dir(&cfg.out).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{}: not empty; choose a new folder, so no older fakes mix in", cfg.out.display());
    }
    crate::data::faces::check_cache(&cfg.cache)?;
    edge::output::check_writable(&cfg.out).context("--out")?;
    let data = folders::scan(&cfg.data)?;
    let cropper = Cropper::open(
        &cfg.detector,
        cfg.min_score,
        cfg.margin,
        cfg.size,
        NoFace::Skip,
        &cfg.cache,
    )?;
    let mut written = FakesWritten {
        unreadable: data.unreadable,
        fakes: cfg.kinds.iter().map(|&k| (k, 0)).collect(),
        ..FakesWritten::default()
    };
    let reals: Vec<_> = data.samples.iter().filter(|s| s.label == Label::Real).collect();
    if reals.is_empty() {
        bail!("no real photos in {}", join(&cfg.data));
    }
    // Every face is cropped first, as a swap may take from any other face of the set.
    let mut cropped = vec![];
    for (n, sample) in reals.iter().enumerate() {
        if n > 0 && n % 100 == 0 {
            log(&format!("{n} of {} photos cropped", reals.len()));
        }
        match cropper.crop(sample) {
            Ok(Cropped::Faces(faces)) => cropped.push((sample, faces)),
            Ok(Cropped::NoFace) => written.no_face.push(sample.path.clone()),
            Err(e) => written.unreadable.push((sample.path.clone(), edge::error::one_line(&e))),
        }
    }
    // In the order of the photos' content, so the donors, like the seeds, do not depend on the
    // folders' order.
    cropped.sort_by(|a, b| a.0.hash.cmp(&b.0.hash));
    let faces = cropped.iter().flat_map(|(_, faces)| faces);
    let sources = Sources::new(
        &cfg.kinds,
        faces.map(|f| (&f.image, f.keypoints.as_ref())),
        cfg.seed,
        Some(&cfg.cache.join(GENERATORS)),
        &mut log,
    )?;
    for (sample, faces) in &cropped {
        let stem = sample.path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
        for (k, face) in faces.iter().enumerate() {
            let name = format!("{stem}-{}-{k}", &sample.hash[..8]);
            save(&cfg.out.join("real").join(format!("{name}.png")), &face.image)?;
            written.real += 1;
            let face_seed = u64::from_str_radix(&sample.hash[..16], 16).unwrap_or(0) ^ k as u64;
            for (j, (kind, count)) in written.fakes.iter_mut().enumerate() {
                let seed = (cfg.seed ^ face_seed).wrapping_add(j as u64);
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                for i in 0..cfg.per_face {
                    let k = face.keypoints.as_ref();
                    let fake = kind.make(&face.image, k, &sources, &cfg.settings, &mut rng)?;
                    let file = format!("{name}-{i}.png");
                    save(&cfg.out.join("fake").join(kind.name()).join(file), &fake)?;
                    *count += 1;
                }
            }
        }
    }
    Ok(written)
}

/// Lossless, so the fakes and their sources differ only in what the kind changed.
fn save(path: &Path, img: &RgbImage) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomically(path, |tmp| Ok(img.save_with_format(tmp, image::ImageFormat::Png)?))
}

fn join(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
