//! Similarity transforms (scale, rotation, shift) of face crops: fitted to keypoints, and
//! applied to an image by bilinear resampling. Self-blends shift and scale a copy of the face;
//! swaps move another face onto it.

use image::{Rgb, RgbImage};

/// A similarity transform (scale, rotation, shift): `q = z·(p − from) + to` in complex numbers,
/// fitted by least squares; `residual` is the fit's error relative to the target's spread, small
/// for faces in the same pose.
#[derive(Clone, Copy, Debug)]
pub struct Similarity {
    pub z: [f32; 2],
    pub from: [f32; 2],
    pub to: [f32; 2],
    pub residual: f32,
}

impl Similarity {
    /// Scaling by `scale` about the centre of a `w`×`h` image, then shifting by `shift`.
    pub fn about_centre(w: u32, h: u32, scale: f32, shift: [f32; 2]) -> Similarity {
        let centre = [w as f32 / 2.0, h as f32 / 2.0];
        let to = [centre[0] + shift[0], centre[1] + shift[1]];
        Similarity { z: [scale, 0.0], from: centre, to, residual: 0.0 }
    }

    pub fn fit(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Similarity {
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

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let (a, [zr, zi]) = ([p[0] - self.from[0], p[1] - self.from[1]], self.z);
        [zr * a[0] - zi * a[1] + self.to[0], zi * a[0] + zr * a[1] + self.to[1]]
    }

    /// `img` moved into the target's frame (`w`×`h`): each target pixel samples the source at
    /// the inverse transform, bilinear, edges clamped.
    pub fn warp(&self, img: &RgbImage, w: u32, h: u32) -> RgbImage {
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

#[cfg(test)]
mod tests {
    use super::*;
    use edge::infer::detect::Keypoints;

    /// Keypoints of a face centred in a 128-px crop.
    const K: Keypoints =
        [[44.0, 52.0], [84.0, 52.0], [64.0, 72.0], [64.0, 90.0], [28.0, 60.0], [100.0, 60.0]];

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
}
