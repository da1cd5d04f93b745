//! Up-sampling traces without a change of content. Image generators build their output by
//! up-sampling (transposed convolutions; nearest or bilinear up-sampling followed by a
//! convolution), which ties neighbouring pixels together in ways a camera does not: the
//! observation behind NPR (Tan et al., CVPR 2024), and behind using a generator's reconstructions
//! of real images as hard fakes (AEROBLADE, DRCT). Written from those descriptions, not copied.
//!
//! A fake of this kind keeps the real face's coarse content and colour (below a Gaussian
//! low-pass) and replaces only its fine detail with that of a generator-style ×2 up-sampling of
//! the face's own half-size copy, scaled so that the fake is as sharp as its source (the energy of
//! its brightness Laplacian), so only the local relationships of the pixels change. A fake that
//! were softer, noisier or recoloured would teach that difference instead (issue 25's probe).

use image::{Rgb, RgbImage};
use rand::Rng;

/// The up-sampling step of a generator's decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsampler {
    /// Nearest-neighbour ×2, then a 3×3 convolution.
    NearestConv,
    /// A transposed convolution, kernel 4, stride 2, padding 1: its uneven overlap leaves a
    /// checkerboard.
    Transposed,
}

/// Bilinear up-sampling is left out: it leaves almost no detail of its own, so raising its detail
/// to the source's energy moved the face's coarse content (measured: 3.6 grey levels RMS after a
/// σ = 2 blur, against under 1 for these two).
pub const UPSAMPLERS: [Upsampler; 2] = [Upsampler::NearestConv, Upsampler::Transposed];

/// The Gaussian whose residual is the fine detail that is replaced.
const DETAIL_SIGMA: f32 = 0.7;

/// One fake: `face`'s fine detail replaced by that of `upsampler` (with random weights, as an
/// untrained or trained decoder has its own) applied to the face's half-size copy.
pub fn upsample_trace(face: &RgbImage, upsampler: Upsampler, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = face.dimensions();
    if w < 4 || h < 4 {
        return face.clone();
    }
    let weights = Weights::draw(upsampler, rng);
    let generated: Vec<Plane> =
        (0..3).map(|c| weights.upsample(&Plane::channel(face, c).half(), w, h)).collect();
    with_detail_of(face, &generated, DETAIL_SIGMA)
}

/// `face` with its fine detail (its residual over a Gaussian low-pass of `sigma`) replaced by the
/// fine detail of `generated` (R, G, B planes of `face`'s size, 0–255), scaled so that the result
/// is exactly as sharp as `face`: its coarse content, colour and sharpness stay the source's.
pub(crate) fn with_detail_of(face: &RgbImage, generated: &[Plane], sigma: f32) -> RgbImage {
    let (w, h) = face.dimensions();
    let source: Vec<Plane> = (0..3).map(|c| Plane::channel(face, c)).collect();
    let (mut low, mut trace) = (vec![], vec![]);
    for (plane, up) in source.iter().zip(generated) {
        trace.push(up.minus(&up.blur(sigma)));
        low.push(plane.blur(sigma));
    }
    // The fake's brightness Laplacian is lap(low) + gain · lap(trace) (both filters are linear);
    // the gain makes its energy the source's, |a + g·b|² = E solved for g ≥ 0, so the fake is
    // exactly as sharp as its source by the measure the shortcut audit uses.
    let (a, b) = (Plane::luma(&low).laplacian(), Plane::luma(&trace).laplacian());
    let e = Plane::luma(&source).laplacian();
    let (e, aa, ab, bb) = (e.dot(&e), a.dot(&a), a.dot(&b), b.dot(&b));
    let gain = if bb > 0.0 {
        ((-ab + (ab * ab - bb * (aa - e)).max(0.0).sqrt()) / bb).max(0.0) as f32
    } else {
        0.0
    };
    RgbImage::from_fn(w, h, |x, y| {
        let i = (y * w + x) as usize;
        Rgb(std::array::from_fn(|c| {
            (low[c].v[i] + gain * trace[c].v[i]).round().clamp(0.0, 255.0) as u8
        }))
    })
}

/// One channel as floats.
#[derive(Clone, Debug)]
pub(crate) struct Plane {
    w: u32,
    h: u32,
    v: Vec<f32>,
}

impl Plane {
    /// A `w` × `h` plane of the values `v`, row by row.
    pub(crate) fn new(w: u32, h: u32, v: Vec<f32>) -> Plane {
        assert_eq!(v.len(), (w * h) as usize, "a plane's values");
        Plane { w, h, v }
    }

    fn channel(img: &RgbImage, c: usize) -> Plane {
        let v = img.pixels().map(|p| p[c] as f32).collect();
        Plane { w: img.width(), h: img.height(), v }
    }

    /// Brightness (ITU-R BT.601 luma, as the shortcut audit computes it) of R, G, B planes.
    fn luma(rgb: &[Plane]) -> Plane {
        let v = (0..rgb[0].v.len())
            .map(|i| 0.299 * rgb[0].v[i] + 0.587 * rgb[1].v[i] + 0.114 * rgb[2].v[i]);
        Plane { w: rgb[0].w, h: rgb[0].h, v: v.collect() }
    }

    /// The 4-neighbour Laplacian, edges clamped.
    fn laplacian(&self) -> Plane {
        Plane::filled(self.w, self.h, |x, y| {
            let (x, y) = (x as i64, y as i64);
            self.at(x - 1, y) + self.at(x + 1, y) + self.at(x, y - 1) + self.at(x, y + 1)
                - 4.0 * self.at(x, y)
        })
    }

    fn filled(w: u32, h: u32, f: impl Fn(u32, u32) -> f32) -> Plane {
        let v = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect();
        Plane { w, h, v }
    }

    /// The value at (x, y), edges clamped.
    fn at(&self, x: i64, y: i64) -> f32 {
        let x = x.clamp(0, self.w as i64 - 1) as usize;
        let y = y.clamp(0, self.h as i64 - 1) as usize;
        self.v[y * self.w as usize + x]
    }

    fn minus(&self, other: &Plane) -> Plane {
        Plane { w: self.w, h: self.h, v: self.v.iter().zip(&other.v).map(|(a, b)| a - b).collect() }
    }

    fn dot(&self, other: &Plane) -> f64 {
        self.v.iter().zip(&other.v).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    /// Separable Gaussian blur.
    fn blur(&self, sigma: f32) -> Plane {
        let radius = (3.0 * sigma).ceil() as i64;
        let taps: Vec<f32> =
            (-radius..=radius).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
        let sum: f32 = taps.iter().sum();
        let taps: Vec<f32> = taps.iter().map(|t| t / sum).collect();
        let pass = |p: &Plane, dx: i64, dy: i64| {
            Plane::filled(p.w, p.h, |x, y| {
                taps.iter()
                    .zip(-radius..)
                    .map(|(t, d)| t * p.at(x as i64 + d * dx, y as i64 + d * dy))
                    .sum()
            })
        };
        pass(&pass(self, 1, 0), 0, 1)
    }

    /// The half-size copy: the mean of each 2×2 block.
    fn half(&self) -> Plane {
        Plane::filled(self.w / 2, self.h / 2, |x, y| {
            let (x, y) = (2 * x as i64, 2 * y as i64);
            (self.at(x, y) + self.at(x + 1, y) + self.at(x, y + 1) + self.at(x + 1, y + 1)) / 4.0
        })
    }

    fn conv3(&self, k: &[f32; 9]) -> Plane {
        Plane::filled(self.w, self.h, |x, y| {
            let (x, y) = (x as i64, y as i64);
            (0..9).map(|i| k[i] * self.at(x + (i % 3) as i64 - 1, y + (i / 3) as i64 - 1)).sum()
        })
    }
}

/// A decoder's up-sampling weights, drawn at random around a smooth kernel.
enum Weights {
    NearestConv([f32; 9]),
    Transposed([f32; 16]),
}

impl Weights {
    fn draw(upsampler: Upsampler, rng: &mut impl Rng) -> Weights {
        // A smooth kernel with a random disturbance of every tap, rescaled to keep the mean.
        let mut jitter = |base: &[f32], spread: f32, total: f32| -> Vec<f32> {
            let k: Vec<f32> =
                base.iter().map(|b| (b + rng.random_range(-spread..spread) * b).max(0.0)).collect();
            let sum: f32 = k.iter().sum();
            k.iter().map(|v| v * total / sum).collect()
        };
        let outer = |a: &[f32]| -> Vec<f32> {
            a.iter().flat_map(|y| a.iter().map(move |x| x * y)).collect()
        };
        match upsampler {
            Upsampler::NearestConv => {
                let k = jitter(&outer(&[1.0, 2.0, 1.0]), 0.5, 1.0);
                Weights::NearestConv(std::array::from_fn(|i| k[i]))
            }
            // The bilinear transposed kernel (each output phase sums to 1 before the jitter),
            // whose four taps per phase no longer balance once disturbed.
            Upsampler::Transposed => {
                let k = jitter(&outer(&[0.25, 0.75, 0.75, 0.25]), 0.5, 4.0);
                Weights::Transposed(std::array::from_fn(|i| k[i]))
            }
        }
    }

    /// `half` up-sampled ×2 to `w` × `h` (an odd last row or column repeats its neighbour).
    fn upsample(&self, half: &Plane, w: u32, h: u32) -> Plane {
        match self {
            Weights::NearestConv(k) => {
                Plane::filled(w, h, |x, y| half.at(x as i64 / 2, y as i64 / 2)).conv3(k)
            }
            // out[o] = Σ_i in[i] · k[o + 1 − 2i] (stride 2, padding 1, taps 0..4); inputs
            // beyond the edge repeat it, so the border is not darkened.
            Weights::Transposed(k) => Plane::filled(w, h, |x, y| {
                let (x, y) = (x as i64, y as i64);
                let mut sum = 0.0;
                for j in y / 2 - 1..=y / 2 + 1 {
                    for i in x / 2 - 1..=x / 2 + 1 {
                        let (tx, ty) = (x + 1 - 2 * i, y + 1 - 2 * j);
                        if (0..4).contains(&tx) && (0..4).contains(&ty) {
                            sum += k[(ty * 4 + tx) as usize] * half.at(i, j);
                        }
                    }
                }
                sum
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A face-like test image: smooth shading plus fine pseudo-random texture (camera noise).
    fn textured(size: u32) -> RgbImage {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        RgbImage::from_fn(size, size, |x, y| {
            let shade = 60.0 + 120.0 * (x as f32 / size as f32) + 30.0 * ((y as f32) / 9.0).sin();
            Rgb(std::array::from_fn(|c| {
                (shade + 10.0 * c as f32 + rng.random_range(-12.0..12.0f32)).clamp(0.0, 255.0) as u8
            }))
        })
    }

    fn plane(img: &RgbImage) -> Plane {
        Plane::luma(&(0..3).map(|c| Plane::channel(img, c)).collect::<Vec<_>>())
    }

    /// How far `img` is from treating even and odd pixel positions alike: the larger of |r − 1|
    /// over two ratios, each near 1 for a camera image. Mean |difference| of neighbours inside a
    /// 2×2 block against across blocks (what nearest up-sampling changes), and the detail energy
    /// of even against odd columns and rows (what an uneven transposed convolution changes).
    fn period_two(img: &RgbImage) -> f64 {
        let p = plane(img);
        let d = p.minus(&p.blur(DETAIL_SIGMA));
        let (mut inside, mut across) = (0.0f64, 0.0f64);
        let mut phase = [[0.0f64; 2]; 2];
        for y in 0..p.h as i64 {
            for x in 0..p.w as i64 {
                let e = (d.at(x, y) as f64).powi(2);
                phase[0][(x % 2) as usize] += e;
                phase[1][(y % 2) as usize] += e;
                if x + 1 < p.w as i64 {
                    let step = (p.at(x, y) - p.at(x + 1, y)).abs() as f64;
                    if x % 2 == 0 {
                        inside += step;
                    } else {
                        across += step;
                    }
                }
            }
        }
        [inside / across, phase[0][0] / phase[0][1], phase[1][0] / phase[1][1]]
            .into_iter()
            .map(|r| (r - 1.0).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn content_and_detail_energy_stay_the_source_s_while_the_pixels_change() {
        let face = textured(64);
        let source = plane(&face);
        let source_sharpness = source.laplacian().dot(&source.laplacian());
        for (n, upsampler) in UPSAMPLERS.into_iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
            let fake = upsample_trace(&face, upsampler, &mut rng);
            let p = plane(&fake);
            // The coarse content: the blurred images agree to within rounding.
            let coarse = p.blur(2.0).minus(&source.blur(2.0));
            let coarse = coarse.dot(&coarse) / source.v.len() as f64;
            assert!(coarse.sqrt() < 2.0, "{upsampler:?}: coarse content moved by {coarse}");
            // The fine detail: as sharp, but not the source's.
            let ratio = p.laplacian().dot(&p.laplacian()) / source_sharpness;
            assert!((0.9..1.1).contains(&ratio), "{upsampler:?}: sharpness ×{ratio}");
            let changed = p.minus(&source);
            let changed = changed.dot(&changed) / source.v.len() as f64;
            assert!(changed.sqrt() > 3.0, "{upsampler:?}: pixels barely changed ({changed})");
        }
    }

    #[test]
    fn nearest_and_transposed_up_sampling_leave_a_period_of_two() {
        let face = textured(64);
        let camera = period_two(&face);
        assert!(camera < 0.05, "source {camera}");
        for upsampler in [Upsampler::NearestConv, Upsampler::Transposed] {
            for seed in 0..4 {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let fake = period_two(&upsample_trace(&face, upsampler, &mut rng));
                assert!(fake > 0.1, "{upsampler:?}, seed {seed}: {fake}");
            }
        }
    }
}
