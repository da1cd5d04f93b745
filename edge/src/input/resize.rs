//! Triangle (bilinear, widened when shrinking) resampling of a rectangle of an RGB image: the face
//! crop and the detector's letterbox both resize through it.
//!
//! It computes exactly what `image::imageops::resize(.., FilterType::Triangle)` computes — the
//! same f32 weights, summed in the same order, a vertical pass then a horizontal one, rounded the
//! same way — so its pixels are identical to the ones the trainer's crops and the tests were made
//! with. `image`'s version is generic over pixel views: it reads every tap through `get_pixel`
//! into four f32 channels and runs its horizontal pass column by column, across rows, which is
//! what made it the slowest part of the crop (`cargo bench -p edge --bench pipeline`). This one
//! works on the RGB bytes directly, row by row.

use image::RgbImage;

/// A rectangle of an image, in pixels, inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The input pixels and normalised weights of every output pixel along one axis.
struct Taps {
    /// First input pixel of output pixel `i`.
    start: Vec<usize>,
    /// `weights[offset[i]..offset[i + 1]]` weigh input pixels `start[i]..`.
    offset: Vec<usize>,
    weights: Vec<f32>,
}

impl Taps {
    /// `image`'s `vertical_sample`/`horizontal_sample` weights, computed the same way (f32).
    fn new(from: u32, to: u32) -> Taps {
        let ratio = from as f32 / to as f32;
        let sratio = if ratio < 1.0 { 1.0 } else { ratio };
        // The triangle kernel's support is 1, widened by the shrink factor.
        let support = sratio;
        let mut taps = Taps { start: vec![], offset: vec![0], weights: vec![] };
        for out in 0..to {
            let centre = (out as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, from as i64 - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, from as i64);
            let centre = centre - 0.5;
            let first = taps.weights.len();
            let mut sum = 0.0;
            for i in left..right {
                let w = triangle((i as f32 - centre) / sratio);
                taps.weights.push(w);
                sum += w;
            }
            for w in &mut taps.weights[first..] {
                *w /= sum;
            }
            taps.start.push(left as usize);
            taps.offset.push(taps.weights.len());
        }
        taps
    }

    fn of(&self, i: usize) -> (usize, &[f32]) {
        (self.start[i], &self.weights[self.offset[i]..self.offset[i + 1]])
    }
}

fn triangle(x: f32) -> f32 {
    if x.abs() < 1.0 {
        1.0 - x.abs()
    } else {
        0.0
    }
}

/// `rect` of `img` resized to `w`×`h` with the triangle filter; black when `rect` is empty (as
/// `image` does). `rect` must lie inside `img`.
pub fn triangle_rect(img: &RgbImage, rect: Rect, w: u32, h: u32) -> RgbImage {
    assert!(
        rect.x + rect.w <= img.width() && rect.y + rect.h <= img.height(),
        "{rect:?} is not inside a {}×{} image",
        img.width(),
        img.height()
    );
    if rect.w == 0 || rect.h == 0 {
        return RgbImage::new(w, h);
    }
    let raw = img.as_raw();
    let stride = img.width() as usize * 3;
    let row = |y: usize| {
        let at = (rect.y as usize + y) * stride + rect.x as usize * 3;
        &raw[at..at + rect.w as usize * 3]
    };
    if (w, h) == (rect.w, rect.h) {
        let data = (0..h as usize).flat_map(row).copied().collect();
        return RgbImage::from_raw(w, h, data).expect("buffer sized for the image");
    }
    // Vertical pass: `h` rows of the rectangle's width, in f32 (as `image` keeps them).
    let line = rect.w as usize * 3;
    let mut tmp = vec![0f32; line * h as usize];
    let taps = Taps::new(rect.h, h);
    for (out_y, acc) in tmp.chunks_exact_mut(line).enumerate() {
        let (start, weights) = taps.of(out_y);
        for (k, &wt) in weights.iter().enumerate() {
            for (a, &p) in acc.iter_mut().zip(row(start + k)) {
                *a += p as f32 * wt;
            }
        }
    }
    // Horizontal pass, rounded to bytes.
    let taps = Taps::new(rect.w, w);
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for src in tmp.chunks_exact(line) {
        for out_x in 0..w as usize {
            let (start, weights) = taps.of(out_x);
            let (mut r, mut g, mut b) = (0f32, 0f32, 0f32);
            for (p, &wt) in src[start * 3..].chunks_exact(3).zip(weights) {
                r += p[0] * wt;
                g += p[1] * wt;
                b += p[2] * wt;
            }
            out.extend([r, g, b].map(|v| v.clamp(0.0, 255.0).round() as u8));
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer sized for the image")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::{self, FilterType};
    use image::Rgb;

    /// Detail at every scale, so that any difference in weights or order would show.
    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = x.wrapping_mul(2654435761).wrapping_add(y.wrapping_mul(40503)) >> 7;
            Rgb([(v & 255) as u8, ((x * 7 + y * 3) & 255) as u8, ((v >> 8) & 255) as u8])
        })
    }

    #[test]
    fn pixels_are_identical_to_image_triangle_resize() {
        let img = pattern(301, 217);
        let rects = [
            Rect { x: 0, y: 0, w: 301, h: 217 },
            Rect { x: 13, y: 29, w: 137, h: 137 },
            Rect { x: 200, y: 5, w: 101, h: 40 },
            Rect { x: 7, y: 100, w: 1, h: 117 },
        ];
        for rect in rects {
            for (w, h) in [(128, 128), (224, 224), (96, 64), (1, 1), (rect.w, rect.h), (300, 2)] {
                let ours = triangle_rect(&img, rect, w, h);
                let view = imageops::crop_imm(&img, rect.x, rect.y, rect.w, rect.h);
                let theirs = imageops::resize(&*view, w, h, FilterType::Triangle);
                assert_eq!(ours.dimensions(), (w, h));
                let differ = ours.pixels().zip(theirs.pixels()).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{rect:?} to {w}×{h}: {differ} pixels differ");
            }
        }
    }
}
