//! Seeded training augmentation: horizontal flip, random resized crop, colour jitter, blur and
//! JPEG re-compression (the last two mimic the recompression and resizing real fakes go through).

use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use rand::Rng;

/// One augmented copy of a face crop, the same size as the input.
pub fn augment(face: &RgbImage, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = face.dimensions();
    let mut img = if rng.random_bool(0.5) { imageops::flip_horizontal(face) } else { face.clone() };
    // Random resized crop: 80–100 % of the area, aspect within ±10 %, resized back.
    let area = rng.random_range(0.8..1.0f32);
    let aspect = rng.random_range(0.9..1.1f32);
    let cw = ((w as f32 * (area * aspect).sqrt()).round() as u32).clamp(1, w);
    let ch = ((h as f32 * (area / aspect).sqrt()).round() as u32).clamp(1, h);
    let (x, y) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
    img = imageops::resize(
        &imageops::crop_imm(&img, x, y, cw, ch).to_image(),
        w,
        h,
        FilterType::Triangle,
    );
    // Colour jitter: brightness and contrast ±15 %, saturation ±15 %.
    let brightness = rng.random_range(-0.15..0.15f32) * 255.0;
    let contrast = rng.random_range(0.85..1.15f32);
    let saturation = rng.random_range(0.85..1.15f32);
    for px in img.pixels_mut() {
        let grey = 0.299 * px[0] as f32 + 0.587 * px[1] as f32 + 0.114 * px[2] as f32;
        for c in 0..3 {
            let v = grey + (px[c] as f32 - grey) * saturation;
            px[c] = ((v - 128.0) * contrast + 128.0 + brightness).clamp(0.0, 255.0) as u8;
        }
    }
    if rng.random_bool(0.2) {
        img = imageops::blur(&img, rng.random_range(0.3..1.2));
    }
    if rng.random_bool(0.3) {
        img = recompress(&img, rng.random_range(60..95)).unwrap_or(img);
    }
    img
}

/// The image after a JPEG round trip at `quality`.
pub fn recompress(img: &RgbImage, quality: u8) -> Option<RgbImage> {
    let mut bytes = vec![];
    JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(img).ok()?;
    let decoder = JpegDecoder::new(std::io::Cursor::new(bytes)).ok()?;
    Some(DynamicImage::from_decoder(decoder).ok()?.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keeps_size_varies_with_seed_and_repeats_with_it() {
        let face = RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 90]));
        let a = augment(&face, &mut rand::rngs::StdRng::seed_from_u64(1));
        let b = augment(&face, &mut rand::rngs::StdRng::seed_from_u64(1));
        let c = augment(&face, &mut rand::rngs::StdRng::seed_from_u64(2));
        assert_eq!(a.dimensions(), (64, 64));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, face);
    }
}
