//! The shortcut audit: how far trivial properties of a face, which say nothing about how it was
//! made, separate the two classes of an evaluation set, and how closely the model's score follows
//! them. A model that a trivial score matches, or whose scores track one, has learned the data
//! set's accidents (generated faces are sharper, portraits larger, ...), not a deepfake's traces.

use super::metrics::auc;
use image::RgbImage;
use serde::Serialize;

/// The trivial properties, in the order of [`Cues::values`].
pub const NAMES: [&str; 4] = ["sharpness", "jpeg_quality", "face_size", "brightness"];

/// A trivial score separating the classes at least this well (AUC either way round) within this
/// much of the model's own AUC means the model is no better than that cue.
pub const MATCH_MARGIN: f64 = 0.02;
/// A rank correlation this strong between the model's score and a cue means the score tracks it.
pub const TRACKING: f64 = 0.7;

/// The trivial properties of one face.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Cues {
    /// Variance of the 4-neighbour Laplacian of the crop's luma, as the classifier sees it.
    pub sharpness: f64,
    /// The file's JPEG quality estimated from its luminance table (100 for lossless files).
    pub jpeg_quality: f64,
    /// The longer side of the face's box in source pixels.
    pub face_size: f64,
    /// Mean luma of the crop, 0-255.
    pub brightness: f64,
}

impl Cues {
    /// The cues of a face: `crop` is what the classifier is fed, `file` the image's bytes.
    pub fn of(crop: &RgbImage, bbox: [f32; 4], file: &[u8]) -> Cues {
        let luma = luma(crop);
        Cues {
            sharpness: laplacian_variance(&luma, crop.width() as usize),
            jpeg_quality: jpeg_quality(file).unwrap_or(100.0),
            face_size: f64::from((bbox[2] - bbox[0]).max(bbox[3] - bbox[1])),
            brightness: luma.iter().sum::<f64>() / luma.len().max(1) as f64,
        }
    }

    pub fn values(&self) -> [f64; 4] {
        [self.sharpness, self.jpeg_quality, self.face_size, self.brightness]
    }
}

/// One cue against the model on an evaluation set.
#[derive(Clone, Debug, Serialize)]
pub struct CueAudit {
    pub cue: &'static str,
    /// The cue's AUC as a FAKE score (below 0.5: fakes have less of it).
    pub auc: f64,
    /// Spearman's rank correlation of the model's p(FAKE) with the cue.
    pub correlation: f64,
    /// The cue separates the classes as well as the model, or the model's score tracks it.
    pub flagged: bool,
}

/// Audits the model's scores `p_fake` (and its AUC `model_auc`) against each cue. Needs both
/// classes; `None` otherwise.
pub fn audit(
    cues: &[Cues],
    p_fake: &[f32],
    fake: &[bool],
    model_auc: f64,
) -> Option<Vec<CueAudit>> {
    let positives = fake.iter().filter(|&&f| f).count();
    if positives == 0 || positives == fake.len() {
        return None;
    }
    let p: Vec<f64> = p_fake.iter().map(|&p| f64::from(p)).collect();
    let audits = NAMES
        .iter()
        .enumerate()
        .map(|(i, &cue)| {
            let values: Vec<f64> = cues.iter().map(|c| c.values()[i]).collect();
            // The AUC code takes f32 scores; the cues' ranges fit f32 without changing their order
            // but for ties closer than f32 can tell, which only moves the AUC by a tie's half.
            let as_f32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            let cue_auc = auc(&as_f32, fake);
            let correlation = spearman(&p, &values);
            let separation = cue_auc.max(1.0 - cue_auc);
            let flagged = separation >= model_auc - MATCH_MARGIN || correlation.abs() >= TRACKING;
            CueAudit { cue, auc: cue_auc, correlation, flagged }
        })
        .collect();
    Some(audits)
}

fn luma(img: &RgbImage) -> Vec<f64> {
    img.pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect()
}

/// Variance of the Laplacian (x[i-1] + x[i+1] + x[i-w] + x[i+w] − 4·x[i]) over the interior.
pub fn laplacian_variance(luma: &[f64], width: usize) -> f64 {
    let height = luma.len().checked_div(width).unwrap_or(0);
    if width < 3 || height < 3 {
        return 0.0;
    }
    let mut values = Vec::with_capacity((width - 2) * (height - 2));
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            let i = y * width + x;
            values.push(
                luma[i - 1] + luma[i + 1] + luma[i - width] + luma[i + width] - 4.0 * luma[i],
            );
        }
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64
}

/// The JPEG standard's luminance quantisation table (Annex K), in natural order.
const STD_LUMINANCE: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// Where the k-th entry of a DQT table (zig-zag order) sits in natural order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The IJG quality (1-100) a JPEG's luminance table was most likely made with: the table's mean
/// scale against the standard one, inverted through libjpeg's quality-to-scale rule. `None` for
/// anything but a JPEG with a luminance table.
pub fn jpeg_quality(bytes: &[u8]) -> Option<f64> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let segment = bytes.get(at + 4..at + 2 + length)?;
        if marker == 0xDB {
            let mut table = segment;
            while let Some((&info, rest)) = table.split_first() {
                let wide = info >> 4 == 1;
                let size = if wide { 128 } else { 64 };
                let entries = rest.get(..size)?;
                if info & 0x0F == 0 {
                    let scale: f64 = (0..64)
                        .map(|k| {
                            let q = if wide {
                                u16::from_be_bytes([entries[2 * k], entries[2 * k + 1]])
                            } else {
                                u16::from(entries[k])
                            };
                            100.0 * f64::from(q) / f64::from(STD_LUMINANCE[ZIGZAG[k]])
                        })
                        .sum::<f64>()
                        / 64.0;
                    let quality =
                        if scale <= 100.0 { (200.0 - scale) / 2.0 } else { 5000.0 / scale };
                    return Some(quality.clamp(1.0, 100.0));
                }
                table = &rest[size..];
            }
        }
        // Entropy-coded data follows the start of scan; the tables come before it.
        if marker == 0xDA {
            return None;
        }
        at += 2 + length;
    }
    None
}

/// Spearman's rank correlation (ties get their mean rank); 0 when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        va += (x - mean) * (x - mean);
        vb += (y - mean) * (y - mean);
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Ranks start at 1; a tie group shares the mean of its ranks.
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::Rgb;

    fn textured(size: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            let v = ((x * 37 + y * 91) % 251) as u8;
            Rgb([v, v.wrapping_mul(3), 255 - v])
        })
    }

    #[test]
    fn jpeg_quality_is_recovered_from_the_table() {
        for quality in [30, 50, 75, 90] {
            let mut bytes = vec![];
            JpegEncoder::new_with_quality(&mut bytes, quality)
                .encode_image(&textured(64))
                .expect("encode");
            let estimate = jpeg_quality(&bytes).expect("a JPEG");
            assert!((estimate - f64::from(quality)).abs() <= 2.0, "{quality}: {estimate}");
        }
        assert_eq!(jpeg_quality(b"\x89PNG\r\n"), None);
        assert_eq!(jpeg_quality(&[0xFF, 0xD8, 0xFF]), None);
    }

    #[test]
    fn sharpness_falls_with_blur_and_brightness_is_the_mean_luma() {
        let sharp = textured(48);
        let soft = image::imageops::blur(&sharp, 2.0);
        let box_ = [0.0, 0.0, 40.0, 30.0];
        let (a, b) = (Cues::of(&sharp, box_, b""), Cues::of(&soft, box_, b""));
        assert!(a.sharpness > 10.0 * b.sharpness, "{} vs {}", a.sharpness, b.sharpness);
        assert_eq!((a.face_size, a.jpeg_quality), (40.0, 100.0));
        let grey = RgbImage::from_pixel(8, 8, Rgb([100, 100, 100]));
        let c = Cues::of(&grey, box_, b"");
        assert!((c.brightness - 100.0).abs() < 1e-9 && c.sharpness == 0.0);
    }

    #[test]
    fn spearman_by_hand() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): 4.5 / √(4.5 · 5) = 0.9487.
        let r = spearman(&[1.0, 5.0, 5.0, 9.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!((r - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn a_model_that_follows_a_cue_is_flagged() {
        let cue =
            |s: f64| Cues { sharpness: s, jpeg_quality: 90.0, face_size: 100.0, brightness: 120.0 };
        let cues: Vec<Cues> = [10.0, 20.0, 30.0, 40.0].map(cue).to_vec();
        let fake = [false, false, true, true];
        // p(FAKE) grows with sharpness: the cue separates as well as the model and is tracked.
        let audits = audit(&cues, &[0.1, 0.2, 0.8, 0.9], &fake, 1.0).expect("both classes");
        assert_eq!(audits[0].cue, "sharpness");
        assert!(audits[0].flagged && audits[0].auc == 1.0 && audits[0].correlation > 0.99);
        // The constant cues neither separate nor correlate.
        assert!(audits[1..].iter().all(|a| !a.flagged && a.auc == 0.5 && a.correlation == 0.0));
        assert!(audit(&cues, &[0.1; 4], &[false; 4], 0.5).is_none());
    }
}
