//! Self-blended images (after Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images",
//! CVPR 2022; written from the paper's description, not its code): a fake made from one real face
//! by blending it with a slightly altered copy of itself inside a soft face mask. The result has
//! the traces face swaps leave (a blending boundary, colour and sharpness mismatch, a small
//! misalignment) while the identity and background stay real, so a classifier learns the traces.

use super::similarity::Similarity;
use edge::infer::detect::Keypoints;
use image::imageops;
use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::Rng;

/// Makes one self-blended fake from a face crop. `keypoints` (in crop pixels: right eye, left eye,
/// nose, mouth, right ear, left ear) place the mask; without them the face is taken to be centred,
/// as `edge::infer::crop` leaves it. `strength` scales the colour and brightness change of the blended
/// copy and the blend ratio: 1 is the paper's subtle range; larger values make fakes that are
/// easier to see.
pub fn self_blend(
    face: &RgbImage,
    keypoints: Option<&Keypoints>,
    strength: f32,
    rng: &mut impl Rng,
) -> RgbImage {
    self_blend_with_mask(face, keypoints, strength, rng).0
}

/// [`self_blend`]'s fake with its blend mask: how much of each pixel came from the altered copy
/// (255: all of it), from which a Face X-ray target is drawn.
pub fn self_blend_with_mask(
    face: &RgbImage,
    keypoints: Option<&Keypoints>,
    strength: f32,
    rng: &mut impl Rng,
) -> (RgbImage, GrayImage) {
    let mut mask = face_mask(face.width(), face.height(), keypoints, rng);
    let source = altered_copy(face, strength, rng);
    // The paper draws the blend ratio from {0.25, 0.5, 0.75, 1, 1, 1}; stronger fakes blend more.
    let ratio =
        ([0.25f32, 0.5, 0.75, 1.0, 1.0, 1.0][rng.random_range(0..6)] * strength.max(1.0)).min(1.0);
    let mut out = face.clone();
    for ((px, s), m) in out.pixels_mut().zip(source.pixels()).zip(mask.pixels_mut()) {
        let weight = m[0] as f32 / 255.0 * ratio;
        for c in 0..3 {
            px[c] = (px[c] as f32 * (1.0 - weight) + s[c] as f32 * weight).round() as u8;
        }
        m[0] = (weight * 255.0).round() as u8;
    }
    (out, mask)
}

/// A soft elliptical face mask (255 inside), its size varied (the paper's erosion and dilation)
/// and its edge blurred by a random amount.
pub fn face_mask(w: u32, h: u32, keypoints: Option<&Keypoints>, rng: &mut impl Rng) -> GrayImage {
    let side = w.min(h) as f32;
    let (cx, cy, ax, ay, angle) = match keypoints {
        Some(k) => {
            let [re, le, nose, mouth, r_ear, l_ear] = *k;
            let eyes = [(re[0] + le[0]) / 2.0, (re[1] + le[1]) / 2.0];
            let eye_dist = ((le[0] - re[0]).powi(2) + (le[1] - re[1]).powi(2)).sqrt().max(1.0);
            let ear_dist = ((l_ear[0] - r_ear[0]).powi(2) + (l_ear[1] - r_ear[1]).powi(2)).sqrt();
            let half_width = (ear_dist / 2.0).max(eye_dist);
            let eyes_to_mouth = (mouth[1] - eyes[1]).abs().max(eye_dist * 0.6);
            // From the brows (above the eyes) to the chin (below the mouth).
            let top = eyes[1] - eyes_to_mouth * 0.8;
            let bottom = mouth[1] + eyes_to_mouth * 0.7;
            let angle = (le[1] - re[1]).atan2(le[0] - re[0]);
            (
                (eyes[0] + nose[0] + mouth[0]) / 3.0,
                (top + bottom) / 2.0,
                half_width * 0.9,
                (bottom - top) / 2.0,
                angle,
            )
        }
        None => (w as f32 / 2.0, h as f32 / 2.0, side * 0.30, side * 0.38, 0.0),
    };
    let (ax, ay) = (ax * rng.random_range(0.85..1.1), ay * rng.random_range(0.85..1.1));
    let (sin, cos) = angle.sin_cos();
    let mask = GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
        Luma([if (u / ax).powi(2) + (v / ay).powi(2) <= 1.0 { 255 } else { 0 }])
    });
    imageops::blur(&mask, side * rng.random_range(0.02..0.08))
}

/// The face with its colour, contrast and sharpness changed and shifted and scaled a little.
fn altered_copy(face: &RgbImage, strength: f32, rng: &mut impl Rng) -> RgbImage {
    let contrast = 1.0 + rng.random_range(-0.15..0.15f32) * strength;
    let brightness = rng.random_range(-20.0..20.0f32) * strength;
    let tint: [f32; 3] = std::array::from_fn(|_| rng.random_range(-15.0..15.0f32) * strength);
    let mut out = RgbImage::from_fn(face.width(), face.height(), |x, y| {
        let p = face.get_pixel(x, y);
        Rgb(std::array::from_fn(|c| {
            ((p[c] as f32 - 128.0) * contrast + 128.0 + brightness + tint[c]).clamp(0.0, 255.0)
                as u8
        }))
    });
    out = if rng.random_bool(0.5) {
        imageops::blur(&out, rng.random_range(0.5..1.5))
    } else {
        imageops::unsharpen(&out, rng.random_range(0.5..1.5), 2)
    };
    let side = face.width().min(face.height()) as f32;
    let scale = rng.random_range(0.95..1.05f32);
    let (dx, dy) = (rng.random_range(-0.03..0.03) * side, rng.random_range(-0.03..0.03) * side);
    let (w, h) = out.dimensions();
    Similarity::about_centre(w, h, scale, [dx, dy]).warp(&out, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn textured(size: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8])
        })
    }

    #[test]
    fn blend_changes_the_face_and_not_the_corners() {
        let face = textured(128);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let fake = self_blend(&face, None, 1.0, &mut rng);
        let diff = |x0: u32, y0: u32, n: u32| -> f32 {
            let mut sum = 0u32;
            for y in y0..y0 + n {
                for x in x0..x0 + n {
                    for c in 0..3 {
                        sum += face.get_pixel(x, y)[c].abs_diff(fake.get_pixel(x, y)[c]) as u32;
                    }
                }
            }
            sum as f32 / (n * n * 3) as f32
        };
        assert!(diff(54, 54, 20) > 2.0, "centre unchanged: {}", diff(54, 54, 20));
        assert_eq!(diff(0, 0, 8), 0.0, "corner changed");
        assert_eq!(diff(120, 120, 8), 0.0, "corner changed");
    }

    /// The mask says where the fake took from the altered copy: nowhere it equals the source,
    /// and it is the fake `self_blend` makes from the same stream.
    #[test]
    fn the_blend_mask_covers_what_changed_and_nothing_else() {
        let face = textured(128);
        let (fake, mask) =
            self_blend_with_mask(&face, None, 1.0, &mut rand::rngs::StdRng::seed_from_u64(7));
        assert_eq!(fake, self_blend(&face, None, 1.0, &mut rand::rngs::StdRng::seed_from_u64(7)));
        let (mut changed, mut unmasked_changes) = (0, 0);
        for ((f, s), m) in fake.pixels().zip(face.pixels()).zip(mask.pixels()) {
            let differs = f.0.iter().zip(s.0).any(|(a, b)| a.abs_diff(b) > 1);
            changed += usize::from(differs);
            unmasked_changes += usize::from(differs && m[0] == 0);
        }
        assert!(changed > 2000, "{changed} pixels changed");
        assert_eq!(unmasked_changes, 0);
        assert!(mask.get_pixel(64, 64)[0] >= 60, "centre {}", mask.get_pixel(64, 64)[0]);
        assert_eq!(mask.get_pixel(1, 1)[0], 0);
    }

    #[test]
    fn same_seed_same_fake() {
        let face = textured(64);
        let a = self_blend(&face, None, 1.0, &mut rand::rngs::StdRng::seed_from_u64(3));
        let b = self_blend(&face, None, 1.0, &mut rand::rngs::StdRng::seed_from_u64(3));
        let c = self_blend(&face, None, 1.0, &mut rand::rngs::StdRng::seed_from_u64(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn keypoint_mask_covers_the_keypoints_and_not_the_corners() {
        let k =
            [[40.0, 50.0], [80.0, 50.0], [60.0, 70.0], [60.0, 88.0], [25.0, 60.0], [95.0, 60.0]];
        let mask = face_mask(128, 128, Some(&k), &mut rand::rngs::StdRng::seed_from_u64(1));
        for [x, y] in &k[..4] {
            assert!(
                mask.get_pixel(*x as u32, *y as u32)[0] > 128,
                "keypoint ({x}, {y}) outside mask"
            );
        }
        assert_eq!(mask.get_pixel(2, 2)[0], 0);
        assert_eq!(mask.get_pixel(125, 125)[0], 0);
    }
}
