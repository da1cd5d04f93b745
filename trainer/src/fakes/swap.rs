//! Blended images of two people (after Li et al., "Face X-ray for More General Face Forgery
//! Detection", CVPR 2020; written from the paper's description, not its code): a real face whose
//! inner face is replaced by another real person's, aligned on the keypoints, its colour matched
//! to the target's, and blended in through a soft mask. It carries what a face swap leaves, a
//! blending boundary and two sources of sharpness, noise and lighting in one face, with no
//! generator involved. Self-blends (`sbi`) are the special case where the donor is the face itself,
//! which is also what this kind falls back to when no other face is at hand.

use super::sbi::{face_mask, self_blend};
use edge::infer::detect::Keypoints;
use image::{Rgb, RgbImage};
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
    let others: Vec<&Donor> = donors.iter().filter(|d| !std::ptr::eq(d.image, face)).collect();
    let Some(target) = keypoints.filter(|_| !others.is_empty()) else {
        return self_blend(face, keypoints, 1.0, rng);
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
    out
}

/// A similarity transform (scale, rotation, shift): `q = z·(p − from) + to` in complex numbers,
/// fitted by least squares; `residual` is the fit's error relative to the target's spread, small
/// for faces in the same pose.
#[derive(Clone, Copy, Debug)]
struct Similarity {
    z: [f32; 2],
    from: [f32; 2],
    to: [f32; 2],
    residual: f32,
}

impl Similarity {
    fn fit(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Similarity {
        let mean = |p: &[[f32; 2]]| {
            let n = p.len() as f32;
            [p.iter().map(|q| q[0]).sum::<f32>() / n, p.iter().map(|q| q[1]).sum::<f32>() / n]
        };
        let (from, to) = (mean(src), mean(dst));
        let (mut re, mut im, mut norm, mut spread) = (0.0, 0.0, 0.0, 0.0);
        for (p, q) in src.iter().zip(dst) {
            let (a, b) = ([p[0] - from[0], p[1] - from[1]], [q[0] - to[0], q[1] - to[1]]);
            // conj(a)·b
            re += a[0] * b[0] + a[1] * b[1];
            im += a[0] * b[1] - a[1] * b[0];
            norm += a[0] * a[0] + a[1] * a[1];
            spread += b[0] * b[0] + b[1] * b[1];
        }
        let z = if norm > 0.0 { [re / norm, im / norm] } else { [1.0, 0.0] };
        let mut t = Similarity { z, from, to, residual: 0.0 };
        let error: f32 = src
            .iter()
            .zip(dst)
            .map(|(p, q)| {
                let m = t.apply(*p);
                (m[0] - q[0]).powi(2) + (m[1] - q[1]).powi(2)
            })
            .sum();
        t.residual = error / spread.max(f32::EPSILON);
        t
    }

    fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let (a, [zr, zi]) = ([p[0] - self.from[0], p[1] - self.from[1]], self.z);
        [zr * a[0] - zi * a[1] + self.to[0], zi * a[0] + zr * a[1] + self.to[1]]
    }

    /// `img` moved into the target's frame (`w`×`h`): each target pixel samples the source at
    /// the inverse transform, bilinear, edges clamped.
    fn warp(&self, img: &RgbImage, w: u32, h: u32) -> RgbImage {
        let [zr, zi] = self.z;
        let n = (zr * zr + zi * zi).max(f32::EPSILON);
        let (iw, ih) = (img.width() as i64, img.height() as i64);
        let at =
            |x: i64, y: i64| img.get_pixel(x.clamp(0, iw - 1) as u32, y.clamp(0, ih - 1) as u32);
        RgbImage::from_fn(w, h, |x, y| {
            let b = [x as f32 + 0.5 - self.to[0], y as f32 + 0.5 - self.to[1]];
            // a = b / z
            let sx = (zr * b[0] + zi * b[1]) / n + self.from[0] - 0.5;
            let sy = (zr * b[1] - zi * b[0]) / n + self.from[1] - 0.5;
            let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            Rgb(std::array::from_fn(|c| {
                let top = at(x0, y0)[c] as f32 * (1.0 - fx) + at(x0 + 1, y0)[c] as f32 * fx;
                let bottom =
                    at(x0, y0 + 1)[c] as f32 * (1.0 - fx) + at(x0 + 1, y0 + 1)[c] as f32 * fx;
                (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
            }))
        })
    }
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
    fn the_fit_recovers_a_known_similarity_and_scores_a_good_fit_low() {
        // Scale 1.2, rotated 10°, shifted.
        let (s, a) = (1.2f32, 10f32.to_radians());
        let z = [s * a.cos(), s * a.sin()];
        let moved: Vec<[f32; 2]> = K
            .iter()
            .map(|p| [z[0] * p[0] - z[1] * p[1] + 7.0, z[1] * p[0] + z[0] * p[1] - 4.0])
            .collect();
        let t = Similarity::fit(&K, &moved);
        for (p, q) in K.iter().zip(&moved) {
            let m = t.apply(*p);
            assert!((m[0] - q[0]).abs() < 1e-3 && (m[1] - q[1]).abs() < 1e-3, "{m:?} {q:?}");
        }
        assert!(t.residual < 1e-6, "{}", t.residual);
        // A face in another pose (mouth far to one side) fits worse.
        let mut other = K;
        other[3] = [90.0, 80.0];
        assert!(Similarity::fit(&other[..4], &K[..4]).residual > 0.01);
    }

    #[test]
    fn the_warp_moves_the_donor_onto_the_target_keypoints() {
        // A donor with a bright dot at each keypoint, at 0.8 of the target's scale and shifted.
        let donor_k: Keypoints = K.map(|[x, y]| [x * 0.8 + 10.0, y * 0.8 + 5.0]);
        let mut donor = RgbImage::new(128, 128);
        for [x, y] in &donor_k[..4] {
            donor.put_pixel(*x as u32, *y as u32, Rgb([255, 255, 255]));
        }
        let t = Similarity::fit(&donor_k[..4], &K[..4]);
        let warped = t.warp(&donor, 128, 128);
        for [x, y] in &K[..4] {
            // The dot, spread over about 1.25 px by the up-scaling, lands within a pixel.
            let near = (-1i32..=1)
                .flat_map(|dy| (-1i32..=1).map(move |dx| (dx, dy)))
                .map(|(dx, dy)| {
                    warped.get_pixel((*x as i32 + dx) as u32, (*y as i32 + dy) as u32)[0]
                })
                .max();
            assert!(near > Some(100), "no dot near ({x}, {y})");
        }
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
