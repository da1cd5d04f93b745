//! One image through the whole chain: decode, detect, crop, classify; with per-stage timings.

use super::classify::{Classifier, Label};
use super::crop;
use super::detect::{Detector, DetectorConfig, Face};
use anyhow::Result;
use image::RgbImage;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Milliseconds spent in each stage for one image (crop and classify summed over its faces).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Timings {
    pub decode: f64,
    pub detect: f64,
    pub crop: f64,
    pub classify: f64,
}

/// One face as reported: box, detector score, keypoints (source pixels), p(FAKE), label (the last
/// two absent when running without a classifier).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaceReport {
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub score: f32,
    pub keypoints: Vec<[f32; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_fake: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
}

/// One image as reported: the `--json` line of `edge --file`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageReport {
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<FaceReport>,
    pub timings_ms: Timings,
}

/// Detector, classifier and the settings that join them.
pub struct Pipeline {
    pub detector: Detector,
    /// `None` runs detection and cropping only (`edge --detect-only`).
    pub classifier: Option<Classifier>,
    /// Crop margin around each face box (see [`crop::square_around`]).
    pub margin: f32,
    /// Decision threshold on p(FAKE); the model's own when `None`.
    pub threshold: Option<f32>,
}

impl Pipeline {
    /// Loads the detector and (unless `classifier` is `None`) the classifier; any failure names
    /// the file and the cause. Start-up is mostly tract typing and optimising the two graphs, so
    /// each loads on a core of its own.
    pub fn load(
        detector: &Path,
        config: DetectorConfig,
        classifier: Option<&Path>,
        margin: f32,
        threshold: Option<f32>,
    ) -> Result<Pipeline> {
        let (detector, classifier) = std::thread::scope(|scope| {
            let classifier = classifier.map(|path| scope.spawn(|| Classifier::load(path)));
            let detector = Detector::load(detector, config);
            let classifier = classifier.map(|thread| {
                thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("classifier loader panicked")))
            });
            (detector, classifier)
        });
        Ok(Pipeline { detector: detector?, classifier: classifier.transpose()?, margin, threshold })
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Source-pixel coordinates rounded to 0.1 px for reporting.
fn px(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}

/// Side of the face crops when there is no classifier to take the size from.
pub const DEFAULT_CROP_SIZE: u32 = 224;

impl Pipeline {
    /// The side of the square face crops: the classifier's input.
    pub fn crop_size(&self) -> u32 {
        self.classifier.as_ref().map_or(DEFAULT_CROP_SIZE, Classifier::input_size)
    }

    /// The decision threshold in use: `--threshold`, else the model's own; `None` without a
    /// classifier.
    pub fn threshold(&self) -> Option<f32> {
        let classifier = self.classifier.as_ref()?;
        Some(self.threshold.unwrap_or(classifier.meta.threshold))
    }

    /// Detects, crops and classifies every face of a decoded image.
    pub fn analyse(&self, img: &RgbImage, timings: &mut Timings) -> Result<Vec<FaceReport>> {
        let t = Instant::now();
        let faces = self.detector.detect(img)?;
        timings.detect = ms_since(t);
        faces.iter().map(|face| self.classify_face(img, face, timings)).collect()
    }

    fn classify_face(
        &self,
        img: &RgbImage,
        face: &Face,
        timings: &mut Timings,
    ) -> Result<FaceReport> {
        let (mut p_fake, mut label) = (None, None);
        if let Some(classifier) = &self.classifier {
            let t = Instant::now();
            let crop = crop::face(img, &face.bbox, self.margin, classifier.input_size());
            timings.crop += ms_since(t);
            let t = Instant::now();
            let p = classifier.p_fake(&crop)?;
            timings.classify += ms_since(t);
            (p_fake, label) = (Some(p), Some(classifier.label(p, self.threshold)));
        }
        let b = face.bbox;
        Ok(FaceReport {
            bbox: [px(b.x0), px(b.y0), px(b.x1), px(b.y1)],
            score: face.score,
            keypoints: face.keypoints.iter().map(|k| [px(k[0]), px(k[1])]).collect(),
            p_fake,
            label,
        })
    }

    /// Decodes and analyses one image file; also returns the decoded image (for annotation).
    pub fn analyse_file(&self, path: &Path) -> Result<(ImageReport, RgbImage)> {
        let t = Instant::now();
        let img = crate::input::decode::open(path)?;
        let report = self.report(crate::input::files::printable(path), &img, ms_since(t))?;
        Ok((report, img))
    }

    /// Analyses an image decoded from `file` (in `decode_ms`): the report `edge --json` prints.
    pub fn report(&self, file: String, img: &RgbImage, decode_ms: f64) -> Result<ImageReport> {
        let mut timings = Timings { decode: decode_ms, ..Timings::default() };
        let faces = self.analyse(img, &mut timings)?;
        Ok(ImageReport {
            file,
            width: img.width(),
            height: img.height(),
            faces,
            timings_ms: timings,
        })
    }
}
