//! Seeded training augmentation, applied alike to real faces and to fakes after the fake is made
//! (issue 25, step 2): horizontal flip, random resized crop, colour jitter, then the quality a
//! face picks up between a sensor and the classifier — a resolution history (down-scaled, then
//! up-scaled back), blur *or* sharpening, sensor-like noise and JPEG re-compression. Both classes
//! cover the same range of sharpness, noise and compression, so none of them tells the class: the
//! reachable real faces are softer than generated ones, and a model that learned "soft = fake"
//! would call every sharp generated face REAL.

use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageBuffer, Pixel, RgbImage};
use rand::Rng;

/// The filters a resolution history is drawn from (cameras, browsers and the board's own
/// resizer use all of these).
const FILTERS: [FilterType; 4] =
    [FilterType::Nearest, FilterType::Triangle, FilterType::CatmullRom, FilterType::Lanczos3];

type Image<P> = ImageBuffer<P, Vec<<P as Pixel>::Subpixel>>;

/// One augmented copy of a face crop, the same size as the input.
pub fn augment(face: &RgbImage, rng: &mut impl Rng) -> RgbImage {
    augment_with_mask(face, None, rng).0
}

/// [`augment`], with a mask of the crop (a fake's blend mask) moved as the face is: flipped,
/// cropped and resized alike. The random stream is drawn from as `augment` draws it.
pub fn augment_with_mask(
    face: &RgbImage,
    mask: Option<&GrayImage>,
    rng: &mut impl Rng,
) -> (RgbImage, Option<GrayImage>) {
    let (w, h) = face.dimensions();
    let flip = rng.random_bool(0.5);
    // Random resized crop: 80–100 % of the area, aspect within ±10 %, resized back.
    let area = rng.random_range(0.8..1.0f32);
    let aspect = rng.random_range(0.9..1.1f32);
    let cw = ((w as f32 * (area * aspect).sqrt()).round() as u32).clamp(1, w);
    let ch = ((h as f32 * (area / aspect).sqrt()).round() as u32).clamp(1, h);
    let (x, y) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
    /// The image flipped when drawn so, then the drawn part of it resized back to its size.
    fn moved<P>(img: &Image<P>, flip: bool, crop: [u32; 4]) -> Image<P>
    where
        P: Pixel + 'static,
        P::Subpixel: 'static,
    {
        let (w, h) = img.dimensions();
        let flipped;
        let img = if flip {
            flipped = imageops::flip_horizontal(img);
            &flipped
        } else {
            img
        };
        let [x, y, cw, ch] = crop;
        imageops::resize(
            &imageops::crop_imm(img, x, y, cw, ch).to_image(),
            w,
            h,
            FilterType::Triangle,
        )
    }
    let mut img = moved(face, flip, [x, y, cw, ch]);
    let mask = mask.map(|m| moved(m, flip, [x, y, cw, ch]));
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
    (degrade(img, rng), mask)
}

/// The quality stages of [`augment`], each drawn on its own: a face seen smaller than the crop
/// (35–90 % of its size), then blurred or sharpened, then noise, then JPEG.
pub fn degrade(mut img: RgbImage, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = img.dimensions();
    if rng.random_bool(0.3) {
        let scale = rng.random_range(0.35..0.9f32);
        let (sw, sh) = (((w as f32 * scale) as u32).max(1), ((h as f32 * scale) as u32).max(1));
        let down = FILTERS[rng.random_range(0..FILTERS.len())];
        let up = FILTERS[rng.random_range(1..FILTERS.len())];
        img = imageops::resize(&imageops::resize(&img, sw, sh, down), w, h, up);
    }
    match rng.random_range(0..10) {
        0 | 1 => img = imageops::blur(&img, rng.random_range(0.3..1.2)),
        2..=4 => img = sharpen(&img, rng.random_range(0.6..1.5), rng.random_range(0.3..1.5)),
        _ => {}
    }
    if rng.random_bool(0.2) {
        img = add_noise(&img, rng.random_range(1.0..5.0), rng);
    }
    if rng.random_bool(0.3) {
        img = recompress(&img, rng.random_range(55..95)).unwrap_or(img);
    }
    img
}

/// Unsharp masking: the image plus `amount` times its detail above a Gaussian of `sigma`, as
/// cameras and phones sharpen.
pub fn sharpen(img: &RgbImage, sigma: f32, amount: f32) -> RgbImage {
    let blurred = imageops::blur(img, sigma);
    let mut out = img.clone();
    for (px, soft) in out.pixels_mut().zip(blurred.pixels()) {
        for c in 0..3 {
            let v = px[c] as f32 + amount * (px[c] as f32 - soft[c] as f32);
            px[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Gaussian noise of `sigma` grey levels, mostly shared by the three channels (a sensor's
/// luminance noise) with a smaller independent part (its chroma noise).
pub fn add_noise(img: &RgbImage, sigma: f32, rng: &mut impl Rng) -> RgbImage {
    let mut out = img.clone();
    for px in out.pixels_mut() {
        let shared = sigma * standard_normal(rng);
        for c in 0..3 {
            let v = px[c] as f32 + shared + 0.4 * sigma * standard_normal(rng);
            px[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// A standard normal draw (Box–Muller), which is all the noise needs of a distributions crate.
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u = 1.0 - rng.random::<f32>(); // in (0, 1], so the logarithm is finite
    let v = rng.random::<f32>();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
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

    /// A mask moves with the face: a bright square off the centre, and a mask of that square,
    /// are found in the same place after each augmentation (flips and crops included), and the
    /// face is the one `augment` makes from the same stream.
    #[test]
    fn a_mask_is_flipped_and_cropped_with_the_face() {
        let square = |x: u32, y: u32| (20..44).contains(&x) && (12..36).contains(&y);
        let face = RgbImage::from_fn(96, 96, |x, y| {
            image::Rgb(if square(x, y) { [230, 220, 210] } else { [30, 40, 50] })
        });
        let mask =
            GrayImage::from_fn(96, 96, |x, y| image::Luma([if square(x, y) { 255 } else { 0 }]));
        let centre = |bright: &dyn Fn(u32, u32) -> bool| {
            let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
            for (x, y) in (0..96).flat_map(|y| (0..96).map(move |x| (x, y))) {
                if bright(x, y) {
                    (sx, sy, n) = (sx + x as f64, sy + y as f64, n + 1.0);
                }
            }
            (sx / n, sy / n)
        };
        let mut flipped = 0;
        for seed in 0..12 {
            let seeded = || rand::rngs::StdRng::seed_from_u64(seed);
            let (img, moved) = augment_with_mask(&face, Some(&mask), &mut seeded());
            assert_eq!(img, augment(&face, &mut seeded()), "seed {seed}");
            let moved = moved.expect("the mask");
            let luma = |x, y| {
                let p: &image::Rgb<u8> = img.get_pixel(x, y);
                p.0.iter().map(|&c| u32::from(c)).sum::<u32>() > 3 * 128
            };
            let (a, b) = (centre(&luma), centre(&|x, y| moved.get_pixel(x, y)[0] > 128));
            assert!((a.0 - b.0).abs() < 2.0 && (a.1 - b.1).abs() < 2.0, "{a:?} against {b:?}");
            flipped += usize::from(b.0 > 48.0);
        }
        assert!(flipped > 0 && flipped < 12, "{flipped} of 12 flipped");
    }

    /// A real photo at a training crop's size, with a camera's texture.
    fn photo_crop() -> RgbImage {
        let photo = image::open(testkit::photo("lenna.png")).expect("lenna.png").into_rgb8();
        imageops::resize(&photo, 160, 160, FilterType::Triangle)
    }

    fn sharpness(img: &RgbImage) -> f64 {
        let luma: Vec<f64> = img
            .pixels()
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .collect();
        crate::eval::shortcuts::laplacian_variance(&luma, img.width() as usize)
    }

    #[test]
    fn degraded_copies_span_softer_and_sharper_than_the_source() {
        let face = photo_crop();
        let source = sharpness(&face);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ratios: Vec<f64> =
            (0..200).map(|_| sharpness(&degrade(face.clone(), &mut rng)) / source).collect();
        let softer = ratios.iter().filter(|&&r| r < 0.6).count();
        let sharper = ratios.iter().filter(|&&r| r > 1.5).count();
        let near = ratios.iter().filter(|&&r| (0.8..1.25).contains(&r)).count();
        // Each class is seen softer and sharper than it came, and most often as it came.
        assert!(softer >= 30, "{softer} of 200 copies softer than 0.6x the source");
        assert!(sharper >= 30, "{sharper} of 200 copies sharper than 1.5x the source");
        assert!(near >= 40, "{near} of 200 copies within 0.8-1.25x the source");
    }

    #[test]
    fn sharpening_raises_sharpness_with_its_amount() {
        let face = photo_crop();
        assert_eq!(sharpen(&face, 1.0, 0.0), face);
        let levels: Vec<f64> =
            [0.0, 0.5, 1.0, 1.5].iter().map(|&a| sharpness(&sharpen(&face, 1.0, a))).collect();
        assert!(levels.windows(2).all(|w| w[1] > w[0] * 1.1), "{levels:?}");
    }

    #[test]
    fn noise_has_the_asked_spread_and_no_bias() {
        let grey = RgbImage::from_pixel(100, 100, image::Rgb([128, 128, 128]));
        let noisy = add_noise(&grey, 4.0, &mut rand::rngs::StdRng::seed_from_u64(3));
        let values: Vec<f64> = noisy.pixels().flat_map(|p| p.0).map(f64::from).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sd =
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        // Shared 4 and independent 1.6 grey levels: 4.31 per channel; rounding adds 1/12.
        assert!((mean - 128.0).abs() < 0.2, "mean {mean}");
        assert!((sd - 4.32).abs() < 0.15, "sd {sd}");
        // The shared part correlates the channels of a pixel: a sensor's luminance noise.
        let (r, g): (Vec<f64>, Vec<f64>) =
            noisy.pixels().map(|p| (f64::from(p[0]) - 128.0, f64::from(p[1]) - 128.0)).unzip();
        let cov = r.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>() / r.len() as f64;
        assert!(cov / (sd * sd) > 0.75, "channel correlation {}", cov / (sd * sd));
    }
}
