//! Face crops of the training images, cut by the edge library exactly as `edge` cuts them on the
//! board, and cached on disk (the original project's `dataset_cropped/`): keyed by the file's
//! content hash and the crop settings, so a second run detects nothing again.

use crate::data::folders::Sample;
use crate::files::hex;
use anyhow::{Context, Result};
use edge::infer::crop;
use edge::infer::detect::Keypoints;
use edge::input::decode;
use edge::output::write_atomically;
use edge::{Detector, DetectorConfig};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What to do with an image in which no face is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NoFace {
    /// Leave the image out (it is listed).
    Skip,
    /// Use the largest centred square of the image (for photos that are already face crops).
    Centre,
}

/// Everything that changes a crop; part of the cache key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropSettings {
    /// The detector file's content hash (a different detector gives different crops).
    pub detector: String,
    pub min_score: f32,
    pub margin: f32,
    pub size: u32,
    pub no_face: NoFace,
}

impl CropSettings {
    /// The settings for the detector file at `detector`, whose content hash keys the cache.
    pub fn for_detector(
        detector: &Path,
        min_score: f32,
        margin: f32,
        size: u32,
        no_face: NoFace,
    ) -> Result<CropSettings> {
        let bytes = std::fs::read(detector)
            .with_context(|| format!("face detector {}", detector.display()))?;
        let detector = hex(&Sha256::digest(&bytes));
        Ok(CropSettings { detector, min_score, margin, size, no_face })
    }

    fn key(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        hex(&Sha256::digest(json.as_bytes()))[..16].to_string()
    }
}

/// A face crop and where its keypoints fall in it (absent for a centre crop).
#[derive(Clone, Debug)]
pub struct FaceCrop {
    pub image: RgbImage,
    pub keypoints: Option<Keypoints>,
}

#[derive(Serialize, Deserialize)]
struct CachedMeta {
    /// Keypoints of each face crop `<stem>-<k>.png`, k from 0.
    faces: Vec<Option<Keypoints>>,
}

/// Makes sure crops can be cached in `dir` (creating it), so that a file or a read-only folder
/// given as the cache fails at start with one line, instead of every photo being skipped.
pub fn check_cache(dir: &Path) -> Result<()> {
    edge::output::check_writable(dir).context("--cache")
}

/// Crops faces through a cache folder.
pub struct Cropper {
    pub detector: Detector,
    pub settings: CropSettings,
    pub cache: PathBuf,
    /// How many samples were served from the cache so far.
    pub cache_hits: std::cell::Cell<usize>,
}

/// The outcome for one sample.
pub enum Cropped {
    /// Every face found (best score first), or the centre crop.
    Faces(Vec<FaceCrop>),
    NoFace,
}

impl Cropper {
    /// Loads the detector file at `detector` and crops `size`-pixel faces with it into `cache`.
    pub fn open(
        detector: &Path,
        min_score: f32,
        margin: f32,
        size: u32,
        no_face: NoFace,
        cache: &Path,
    ) -> Result<Cropper> {
        let settings = CropSettings::for_detector(detector, min_score, margin, size, no_face)?;
        let config = DetectorConfig { min_score, ..DetectorConfig::default() };
        Ok(Cropper {
            detector: Detector::load(detector, config)?,
            settings,
            cache: cache.to_path_buf(),
            cache_hits: Default::default(),
        })
    }

    fn stem(&self, sample: &Sample) -> String {
        format!("{}-{}", &sample.hash[..32], self.settings.key())
    }

    fn cached(&self, stem: &str) -> Option<Vec<FaceCrop>> {
        let meta = std::fs::read_to_string(self.cache.join(format!("{stem}.json"))).ok()?;
        let meta: CachedMeta = serde_json::from_str(&meta).ok()?;
        let mut faces = vec![];
        for (k, keypoints) in meta.faces.into_iter().enumerate() {
            let image = image::open(self.cache.join(format!("{stem}-{k}.png"))).ok()?.into_rgb8();
            faces.push(FaceCrop { image, keypoints });
        }
        Some(faces)
    }

    /// The crops of every face of `sample`, from the cache when it is there.
    pub fn crop(&self, sample: &Sample) -> Result<Cropped> {
        let stem = self.stem(sample);
        if let Some(faces) = self.cached(&stem) {
            self.cache_hits.set(self.cache_hits.get() + 1);
            return Ok(if faces.is_empty() { Cropped::NoFace } else { Cropped::Faces(faces) });
        }
        let img = decode::open(&sample.path)?;
        let s = &self.settings;
        let mut crops: Vec<FaceCrop> = self
            .detector
            .detect(&img)?
            .iter()
            .map(|face| {
                let square = crop::square_around(&face.bbox, s.margin);
                let scale = s.size as f32 / square.side as f32;
                let keypoints = face
                    .keypoints
                    .map(|[x, y]| [(x - square.x as f32) * scale, (y - square.y as f32) * scale]);
                FaceCrop { image: crop::cut(&img, square, s.size), keypoints: Some(keypoints) }
            })
            .collect();
        if crops.is_empty() && s.no_face == NoFace::Centre {
            crops.push(FaceCrop { image: centre_crop(&img, s.size), keypoints: None });
        }
        std::fs::create_dir_all(&self.cache)
            .with_context(|| format!("cannot create crop cache {}", self.cache.display()))?;
        for (k, face) in crops.iter().enumerate() {
            let png = self.cache.join(format!("{stem}-{k}.png"));
            write_atomically(&png, |tmp| {
                Ok(face.image.save_with_format(tmp, image::ImageFormat::Png)?)
            })?;
        }
        // The list is written last: a crop set is cached only once all its images are.
        let meta = serde_json::to_string(&CachedMeta {
            faces: crops.iter().map(|f| f.keypoints).collect(),
        })?;
        write_atomically(&self.cache.join(format!("{stem}.json")), |tmp| {
            Ok(std::fs::write(tmp, &meta)?)
        })?;
        Ok(if crops.is_empty() { Cropped::NoFace } else { Cropped::Faces(crops) })
    }
}

/// The largest centred square of `img`, resized to `size`.
pub fn centre_crop(img: &RgbImage, size: u32) -> RgbImage {
    let side = img.width().min(img.height());
    let square = crop::Square {
        x: ((img.width() - side) / 2) as i64,
        y: ((img.height() - side) / 2) as i64,
        side,
    };
    crop::cut(img, square, size)
}
