//! Face detection with MediaPipe BlazeFace (short range 128×128, full range 192×192) through tract,
//! decoded as MediaPipe decodes it: letterboxed input scaled to [-1, 1], SSD anchors, box and six
//! keypoints relative to the anchors, sigmoid scores, a minimum score, weighted NMS, and every
//! coordinate mapped back to source pixels by undoing exactly the letterbox that was applied.
//!
//! BlazeFace sees the whole image shrunk to 128 or 192 pixels, which loses the small faces of a
//! group photo. With tiling on (`--tiles`), large images are also cut into overlapping tiles, each detected at
//! the model's resolution, and all detections merge in one weighted NMS.

use super::anchors::{Anchor, AnchorSpec, FULL_RANGE, SHORT_RANGE};
use super::face::{Face, KEYPOINTS};
use super::nms::weighted_nms;
use crate::geometry::BBox;
use crate::infer::model::{self, Plan};
use crate::input::resize::{self, Rect};
use anyhow::{bail, Context, Result};
use image::RgbImage;
use std::path::Path;
use tract_onnx::prelude::*;

/// BlazeFace outputs per anchor: box centre x, y, width, height, then (x, y) per keypoint.
const COORDS: usize = 4 + 2 * KEYPOINTS;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Detections scoring below this are dropped (MediaPipe's `min_score_thresh`).
    pub min_score: f32,
    /// Detections overlapping more than this merge (MediaPipe's `min_suppression_threshold`).
    pub nms_iou: f32,
    /// Also detect on overlapping tiles of images much larger than the model input. Off by
    /// default: the whole-image pass is what MediaPipe does, and tiles add passes (time) and
    /// a few low-score false positives; it is for small faces in large photos.
    pub tiling: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig { min_score: 0.5, nms_iou: 0.3, tiling: false }
    }
}

/// A BlazeFace model ready to run. Clones share the optimised model (the live loop's detection
/// thread runs one).
#[derive(Clone)]
pub struct Detector {
    plan: Plan,
    spec: AnchorSpec,
    anchors: Vec<Anchor>,
    /// Output indices of the box regressors and of the score logits.
    boxes_output: usize,
    scores_output: usize,
    pub config: DetectorConfig,
}

/// How a region was fitted into the model input: scaled by (sx, sy), then offset by the padding.
struct Letterbox {
    region: Rect,
    sx: f32,
    sy: f32,
    pad_x: f32,
    pad_y: f32,
}

impl Letterbox {
    fn new(region: Rect, size: usize) -> (Letterbox, u32, u32) {
        let scale = size as f32 / region.w.max(region.h) as f32;
        let w = ((region.w as f32 * scale).round() as u32).clamp(1, size as u32);
        let h = ((region.h as f32 * scale).round() as u32).clamp(1, size as u32);
        let lb = Letterbox {
            region,
            sx: w as f32 / region.w as f32,
            sy: h as f32 / region.h as f32,
            pad_x: ((size as u32 - w) / 2) as f32,
            pad_y: ((size as u32 - h) / 2) as f32,
        };
        (lb, w, h)
    }
    /// Model input pixels to source pixels.
    fn to_source(&self, x: f32, y: f32) -> [f32; 2] {
        [
            self.region.x as f32 + (x - self.pad_x) / self.sx,
            self.region.y as f32 + (y - self.pad_y) / self.sy,
        ]
    }
}

impl Detector {
    /// Loads a BlazeFace `.tflite` (official MediaPipe file, fp16 weights accepted) or `.onnx`.
    pub fn load(path: &Path, config: DetectorConfig) -> Result<Detector> {
        Self::load_inner(path, config).with_context(|| format!("face detector {}", path.display()))
    }

    fn load_inner(path: &Path, config: DetectorConfig) -> Result<Detector> {
        let loaded = model::load(path)?;
        let input = loaded.model.input_fact(0)?.shape.as_concrete().map(|s| s.to_vec());
        let spec = match input.as_deref() {
            Some([1, 128, 128, 3]) => SHORT_RANGE,
            Some([1, 192, 192, 3]) => FULL_RANGE,
            other => bail!(
                "input shape {other:?} is not BlazeFace's: expected 1×128×128×3 (short range) \
                 or 1×192×192×3 (full range)"
            ),
        };
        let size = spec.input_size;
        let plan = model::plan(loaded.model, &[1, size, size, 3], Self::axis_pass(loaded.format))?;
        let anchors = spec.anchors();
        // Identify the outputs by shape, checked once here so that `detect` can rely on them. The
        // optimised model knows every output's shape, so no frame has to be run for it.
        let optimised = plan.model();
        let count = optimised.outputs.len();
        let shape_of = |i: usize| {
            optimised.output_fact(i).ok().and_then(|f| f.shape.as_concrete().map(|s| s.to_vec()))
        };
        let find = |last: usize| {
            (0..count).find(|&i| shape_of(i).as_deref() == Some(&[1, anchors.len(), last][..]))
        };
        let (Some(boxes_output), Some(scores_output)) = (find(COORDS), find(1)) else {
            let shapes: Vec<_> = (0..count).map(shape_of).collect();
            bail!(
                "outputs {shapes:?} are not BlazeFace's: expected 1×{n}×{COORDS} boxes and 1×{n}×1 scores",
                n = anchors.len()
            );
        };
        Ok(Detector { plan, spec, anchors, boxes_output, scores_output, config })
    }

    /// How much graph work the detector's plan gets. A TFLite BlazeFace is channel-last
    /// throughout, the layout tract runs depthwise layers fastest in where it has a channel-inner
    /// kernel (`crate::infer::kernels`): there tract's layout pass gains nothing (same outputs,
    /// same run time) and is the costliest step of the detector's load (docs/performance.md,
    /// start-up and memory). Anywhere else, and for an ONNX export (which may carry transposes
    /// the pass removes), the detector gets the whole of it.
    pub fn axis_pass(format: model::Format) -> model::AxisPass {
        if format == model::Format::Tflite && crate::infer::kernels::channel_inner() {
            model::AxisPass::Skip
        } else {
            model::AxisPass::Run
        }
    }

    /// The model's input side in pixels (128 or 192).
    pub fn input_size(&self) -> usize {
        self.spec.input_size
    }

    /// One model run on a blank input (for benchmarks: the model alone, without letterboxing).
    pub fn run_blank(&self) -> Result<()> {
        let size = self.spec.input_size;
        self.plan.run(tvec!(Tensor::zero::<f32>(&[1, size, size, 3])?.into()))?;
        Ok(())
    }

    /// The model input for the whole image, as `detect` prepares it (for `edge bench`: the model
    /// alone on a real input, and the same input for other runtimes).
    pub fn input_tensor(&self, img: &RgbImage) -> Result<Tensor> {
        let region = Rect { x: 0, y: 0, w: img.width(), h: img.height() };
        Ok(self.letterbox(img, region)?.1)
    }

    /// The optimised tract plan (for `edge bench --profile`).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Finds the faces in an image, best score first.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Face>> {
        let mut all = vec![];
        for region in self.regions(img.width(), img.height()) {
            let whole = region.w == img.width() && region.h == img.height();
            for face in self.detect_region(img, region)? {
                if whole || !touches_inner_edge(&face.bbox, region, img) {
                    all.push(face);
                }
            }
        }
        Ok(weighted_nms(all, self.config.nms_iou))
    }

    /// The whole image, then (with tiling, for images at least four model inputs across their
    /// shorter side) a grid of square tiles half the shorter side wide, overlapping by half.
    fn regions(&self, width: u32, height: u32) -> Vec<Rect> {
        let mut regions = vec![Rect { x: 0, y: 0, w: width, h: height }];
        let short = width.min(height);
        if !self.config.tiling || (short as usize) < 4 * self.spec.input_size {
            return regions;
        }
        let tile = short / 2;
        let starts = |len: u32| {
            let n = (len - tile).div_ceil(tile / 2) + 1;
            (0..n).map(move |i| ((len - tile) as u64 * i as u64 / (n - 1).max(1) as u64) as u32)
        };
        for y in starts(height) {
            for x in starts(width) {
                regions.push(Rect { x, y, w: tile, h: tile });
            }
        }
        regions
    }

    fn detect_region(&self, img: &RgbImage, region: Rect) -> Result<Vec<Face>> {
        let size = self.spec.input_size;
        let (lb, input) = self.letterbox(img, region)?;
        let outputs = self.plan.run(tvec!(input.into()))?;
        let boxes = outputs[self.boxes_output].try_as_plain_ram()?;
        let boxes = boxes.as_slice::<f32>()?;
        let scores = outputs[self.scores_output].try_as_plain_ram()?;
        let scores = scores.as_slice::<f32>()?;
        let mut faces = vec![];
        for (i, (anchor, &logit)) in self.anchors.iter().zip(scores).enumerate() {
            // MediaPipe clips logits to ±100 before the sigmoid.
            let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
            if score < self.config.min_score {
                continue;
            }
            let raw = &boxes[i * COORDS..(i + 1) * COORDS];
            // Offsets are in model-input pixels; anchors are in [0, 1] of the input.
            let (ax, ay) = (anchor.x * size as f32, anchor.y * size as f32);
            let (cx, cy) = (raw[0] + ax, raw[1] + ay);
            let (half_w, half_h) = (raw[2] / 2.0, raw[3] / 2.0);
            let [x0, y0] = lb.to_source(cx - half_w, cy - half_h);
            let [x1, y1] = lb.to_source(cx + half_w, cy + half_h);
            let mut keypoints = [[0.0; 2]; KEYPOINTS];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = lb.to_source(raw[4 + 2 * k] + ax, raw[5 + 2 * k] + ay);
            }
            faces.push(Face { bbox: BBox { x0, y0, x1, y1 }, score, keypoints });
        }
        Ok(faces)
    }

    /// The model input for one region: letterboxed to the input size, scaled to [-1, 1].
    fn letterbox(&self, img: &RgbImage, region: Rect) -> Result<(Letterbox, Tensor)> {
        let size = self.spec.input_size;
        let (lb, w, h) = Letterbox::new(region, size);
        let resized = resize::triangle_rect(img, region, w, h);
        // Padding is black, which is -1 once scaled to [-1, 1].
        let mut input = vec![-1f32; size * size * 3];
        for (x, y, px) in resized.enumerate_pixels() {
            let at = ((y + lb.pad_y as u32) as usize * size + (x + lb.pad_x as u32) as usize) * 3;
            for c in 0..3 {
                input[at + c] = px[c] as f32 / 127.5 - 1.0;
            }
        }
        Ok((lb, Tensor::from_shape(&[1, size, size, 3], &input)?))
    }
}

/// True when a box found in a tile reaches an edge of the tile that is not an edge of the image:
/// the face is likely cut there, and another tile (or the whole-image pass) sees it whole.
fn touches_inner_edge(b: &BBox, r: Rect, img: &RgbImage) -> bool {
    const MARGIN: f32 = 2.0;
    (r.x > 0 && b.x0 < r.x as f32 + MARGIN)
        || (r.y > 0 && b.y0 < r.y as f32 + MARGIN)
        || (r.x + r.w < img.width() && b.x1 > (r.x + r.w) as f32 - MARGIN)
        || (r.y + r.h < img.height() && b.y1 > (r.y + r.h) as f32 - MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_round_trips_portrait_and_landscape() {
        for (w, h) in [(300, 600), (600, 300), (128, 128), (1, 999)] {
            let region = Rect { x: 10, y: 20, w, h };
            let (lb, rw, rh) = Letterbox::new(region, 128);
            assert!(rw <= 128 && rh <= 128 && (rw == 128 || rh == 128));
            // The corners of the resized image map back to the corners of the region.
            let tl = lb.to_source(lb.pad_x, lb.pad_y);
            let br = lb.to_source(lb.pad_x + rw as f32, lb.pad_y + rh as f32);
            assert!((tl[0] - 10.0).abs() < 1e-3 && (tl[1] - 20.0).abs() < 1e-3, "{tl:?}");
            assert!((br[0] - (10 + w) as f32).abs() < 1e-3, "{br:?} for {w}×{h}");
            assert!((br[1] - (20 + h) as f32).abs() < 1e-3, "{br:?} for {w}×{h}");
        }
    }
}
