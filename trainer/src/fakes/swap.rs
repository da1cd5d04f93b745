//! Blended images of two people (after Li et al., "Face X-ray for More General Face Forgery
//! Detection", CVPR 2020; written from the paper's description, not its code): a real face whose
//! inner face is replaced by another real person's, aligned on the keypoints, its colour matched
//! to the target's, and blended in through a soft mask. It carries what a face swap leaves, a
//! blending boundary and two sources of sharpness, noise and lighting in one face, with no
//! generator involved. Self-blends (`sbi`) are the special case where the donor is the face itself,
//! which is also what this kind falls back to when no other face is at hand.

use super::sbi::{face_mask, self_blend_with_mask};
use super::similarity::Similarity;
use edge::infer::detect::Keypoints;
use image::{GrayImage, Rgb, RgbImage};
use rand::Rng;

/// Another real face that may lend its inner face.
#[derive(Clone, Copy, Debug)]
pub struct Donor<'a> {
    pub image: &'a RgbImage,
    pub keypoints: &'a Keypoints,
}

/// Donors compared for pose: the paper takes the nearest face by landmarks from a large pool; a
/// few random candidates keep the choice cheap and varied on a small one.
const CANDIDATES: usize = 8;

/// One fake: `face` with the inner face of the donor (among `donors`, never `face` itself) whose
/// keypoints fit the face's best. Without keypoints or another donor, a self-blend.
pub fn face_swap(
    face: &RgbImage,
    keypoints: Option<&Keypoints>,
    donors: &[Donor],
    rng: &mut impl Rng,
) -> RgbImage {
    face_swap_with_mask(face, keypoints, donors, rng).0
}

/// [`face_swap`]'s fake with its blend mask: how much of each pixel came from the donor (255:
/// all of it), from which a Face X-ray target is drawn.
pub fn face_swap_with_mask(
    face: &RgbImage,
    keypoints: Option<&Keypoints>,
    donors: &[Donor],
    rng: &mut impl Rng,
) -> (RgbImage, GrayImage) {
    let others: Vec<&Donor> = donors.iter().filter(|d| !std::ptr::eq(d.image, face)).collect();
    let Some(target) = keypoints.filter(|_| !others.is_empty()) else {
        return self_blend_with_mask(face, keypoints, 1.0, rng);
    };
    let donor = (0..CANDIDATES.min(others.len()))
        .map(|_| others[rng.random_range(0..others.len())])
        .map(|d| (d, Similarity::fit(&d.keypoints[..4], &target[..4])))
        .min_by(|a, b| a.1.residual.total_cmp(&b.1.residual))
        .expect("at least one candidate");
    let (d, to_target) = donor;
    let warped = to_target.warp(d.image, face.width(), face.height());
    let mask = face_mask(face.width(), face.height(), Some(target), rng);
    let weight = |x, y| mask.get_pixel(x, y)[0] as f32 / 255.0;
    let recoloured = match_colour(&warped, face, &weight);
    let mut out = face.clone();
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (m, s) = (weight(x, y), recoloured.get_pixel(x, y));
        for c in 0..3 {
            px[c] = (px[c] as f32 * (1.0 - m) + s[c] as f32 * m).round() as u8;
        }
    }
    (out, mask)
}

/// `donor` with each channel's mean and spread made the target's, both measured under the mask
/// `weight` (the paper's colour correction, so the fake is not told by its colour alone).
fn match_colour(
    donor: &RgbImage,
    target: &RgbImage,
    weight: &impl Fn(u32, u32) -> f32,
) -> RgbImage {
    let stats = |img: &RgbImage| {
        let (mut sum, mut sq, mut total) = ([0f64; 3], [0f64; 3], 0f64);
        for (x, y, p) in img.enumerate_pixels() {
            let m = weight(x, y) as f64;
            total += m;
            for c in 0..3 {
                sum[c] += m * p[c] as f64;
                sq[c] += m * (p[c] as f64).powi(2);
            }
        }
        let total = total.max(1e-6);
        std::array::from_fn::<_, 3, _>(|c| {
            let mean = sum[c] / total;
            (mean, (sq[c] / total - mean * mean).max(0.0).sqrt().max(1.0))
        })
    };
    let (from, to) = (stats(donor), stats(target));
    RgbImage::from_fn(donor.width(), donor.height(), |x, y| {
        let p = donor.get_pixel(x, y);
        Rgb(std::array::from_fn(|c| {
            let ((m0, s0), (m1, s1)) = (from[c], to[c]);
            ((p[c] as f64 - m0) / s0 * s1 + m1).round().clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::sbi::self_blend;
    use rand::SeedableRng;

    /// Keypoints of a face centred in a 128-px crop.
    const K: Keypoints =
        [[44.0, 52.0], [84.0, 52.0], [64.0, 72.0], [64.0, 90.0], [28.0, 60.0], [100.0, 60.0]];

    fn textured(size: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            let v = (x * 7 + y * 3 + seed * 31) % 256;
            Rgb([v as u8, ((y * 5 + seed * 17) % 256) as u8, ((x + y + seed) % 256) as u8])
        })
    }

    #[test]
    fn the_swap_changes_the_inner_face_to_the_donors_colour_and_keeps_the_corners() {
        let face = textured(128, 1);
        // The donor: another texture, much brighter; after colour matching the inside keeps the
        // target's mean, so only the pattern changes.
        let bright = RgbImage::from_fn(128, 128, |x, y| {
            let p = textured(128, 9).get_pixel(x, y).0;
            Rgb(p.map(|v| v / 2 + 120))
        });
        let donors = [Donor { image: &bright, keypoints: &K }];
        let fake = face_swap(&face, Some(&K), &donors, &mut rand::rngs::StdRng::seed_from_u64(5));
        let mean_abs = |x0: u32, y0: u32, n: u32, a: &RgbImage, b: &RgbImage| {
            let mut sum = 0f32;
            for y in y0..y0 + n {
                for x in x0..x0 + n {
                    for c in 0..3 {
                        sum += (a.get_pixel(x, y)[c] as f32 - b.get_pixel(x, y)[c] as f32).abs();
                    }
                }
            }
            sum / (n * n * 3) as f32
        };
        assert!(mean_abs(54, 60, 20, &face, &fake) > 10.0, "inner face unchanged");
        assert_eq!(mean_abs(0, 0, 8, &face, &fake), 0.0, "corner changed");
        assert_eq!(mean_abs(118, 118, 8, &face, &fake), 0.0, "corner changed");
        let mean = |img: &RgbImage| {
            let mut s = 0f32;
            for y in 60..80 {
                for x in 54..74 {
                    s += img.get_pixel(x, y).0.iter().map(|&v| v as f32).sum::<f32>();
                }
            }
            s / (20.0 * 20.0 * 3.0)
        };
        assert!((mean(&fake) - mean(&face)).abs() < 12.0, "{} vs {}", mean(&fake), mean(&face));
    }

    #[test]
    fn the_face_itself_is_never_its_own_donor() {
        let face = textured(64, 2);
        let k = K.map(|[x, y]| [x / 2.0, y / 2.0]);
        let donors = [Donor { image: &face, keypoints: &k }];
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let fake = face_swap(&face, Some(&k), &donors, &mut rng);
        // The self-blend it falls back to, from the same random stream.
        let sbi = self_blend(&face, Some(&k), 1.0, &mut rand::rngs::StdRng::seed_from_u64(3));
        assert_eq!(fake, sbi);
    }
}
