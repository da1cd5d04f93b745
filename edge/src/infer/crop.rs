//! The face crop: a square around a detected face, grown by a margin, padded with black where it
//! leaves the image, resized to the classifier's input. This is the single definition of the crop;
//! the trainer cuts its training faces with it too.

use crate::geometry::BBox;
use crate::input::resize::{self, Rect};
use image::imageops;
use image::{Rgb, RgbImage};

/// Default margin: the square's side is the larger box side times (1 + margin). BlazeFace boxes run
/// from the brows to the chin; a margin keeps the blending boundary of swapped faces in view.
pub const DEFAULT_MARGIN: f32 = 0.3;
/// The largest margin a setting may ask for: a square three times the face's side.
pub const MAX_MARGIN: f32 = 2.0;

/// A square in source pixels; it may extend beyond the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Square {
    pub x: i64,
    pub y: i64,
    pub side: u32,
}

/// The square around a face box with the given margin.
pub fn square_around(b: &BBox, margin: f32) -> Square {
    let side = (b.width().max(b.height()) * (1.0 + margin)).round().max(1.0);
    let cx = (b.x0 + b.x1) / 2.0;
    let cy = (b.y0 + b.y1) / 2.0;
    Square {
        x: (cx - side / 2.0).round() as i64,
        y: (cy - side / 2.0).round() as i64,
        side: side as u32,
    }
}

/// Cuts `square` out of `img` and resizes it to `size`×`size`; parts outside the image are black.
pub fn cut(img: &RgbImage, square: Square, size: u32) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let side = square.side as i64;
    let (cx0, cy0) = (square.x.clamp(0, w), square.y.clamp(0, h));
    let (cx1, cy1) = ((square.x + side).clamp(0, w), (square.y + side).clamp(0, h));
    if cx1 <= cx0 || cy1 <= cy0 {
        return RgbImage::from_pixel(size, size, Rgb([0, 0, 0]));
    }
    // Where the visible part lands in the output, scaled from the square to `size`.
    let scale = size as f64 / side as f64;
    let dx0 = ((cx0 - square.x) as f64 * scale).round() as i64;
    let dy0 = ((cy0 - square.y) as f64 * scale).round() as i64;
    let dx1 = ((cx1 - square.x) as f64 * scale).round() as i64;
    let dy1 = ((cy1 - square.y) as f64 * scale).round() as i64;
    let (dw, dh) = ((dx1 - dx0).max(1) as u32, (dy1 - dy0).max(1) as u32);
    let visible =
        Rect { x: cx0 as u32, y: cy0 as u32, w: (cx1 - cx0) as u32, h: (cy1 - cy0) as u32 };
    let part = resize::triangle_rect(img, visible, dw, dh);
    if part.dimensions() == (size, size) {
        // The square lies inside the image: nothing to pad.
        return part;
    }
    let mut out = RgbImage::from_pixel(size, size, Rgb([0, 0, 0]));
    imageops::replace(&mut out, &part, dx0, dy0);
    out
}

/// The classifier input for one face: `square_around` then `cut`.
pub fn face(img: &RgbImage, b: &BBox, margin: f32, size: u32) -> RgbImage {
    cut(img, square_around(b, margin), size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 200]))
    }

    #[test]
    fn square_is_centred_on_the_box_and_grown_by_the_margin() {
        let b = BBox { x0: 100.0, y0: 50.0, x1: 140.0, y1: 130.0 };
        let s = square_around(&b, 0.5);
        assert_eq!(s, Square { x: 60, y: 30, side: 120 });
    }

    #[test]
    fn inside_crop_at_native_size_copies_pixels() {
        let img = gradient(100, 80);
        let out = cut(&img, Square { x: 10, y: 20, side: 30 }, 30);
        assert_eq!(out.get_pixel(0, 0), &Rgb([10, 20, 200]));
        assert_eq!(out.get_pixel(29, 29), &Rgb([39, 49, 200]));
    }

    #[test]
    fn crop_over_the_border_is_padded_black() {
        let img = gradient(100, 80);
        let out = cut(&img, Square { x: -10, y: 60, side: 40 }, 40);
        assert_eq!(out.get_pixel(5, 5), &Rgb([0, 0, 0])); // left of the image
        assert_eq!(out.get_pixel(15, 35), &Rgb([0, 0, 0])); // below the image
        assert_eq!(out.get_pixel(10, 0), &Rgb([0, 60, 200])); // first visible pixel
        assert_eq!(out.get_pixel(39, 19), &Rgb([29, 79, 200]));
    }

    #[test]
    fn crop_entirely_outside_is_black_and_sized() {
        let out = cut(&gradient(10, 10), Square { x: 50, y: 50, side: 20 }, 16);
        assert_eq!(out.dimensions(), (16, 16));
        assert!(out.pixels().all(|p| p == &Rgb([0, 0, 0])));
    }
}
