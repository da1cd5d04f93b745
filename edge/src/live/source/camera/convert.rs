//! Camera frames to RGB: MJPEG, YUYV, NV12, grey and packed RGB/BGR, as V4L2 hands them over.
//! Pure functions of the bytes, so they are tested on real photos without a camera.
//!
//! V4L2 buffers may be longer than the picture: rows can be padded (`bytesperline` > width ×
//! bytes per pixel) and an MJPEG buffer holds the whole mmap area with stale bytes after the
//! end-of-image marker. Row padding is inferred from the buffer length; JPEG stops at its EOI.

use anyhow::{bail, ensure, Context, Result};
use image::{ImageFormat, RgbImage};
use std::borrow::Cow;

/// How the camera encodes its frames (the V4L2 pixel formats edge decodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameEncoding {
    /// Motion JPEG: one JPEG per frame, often without Huffman tables.
    Mjpeg,
    /// YUV 4:2:2 packed as Y0 U Y1 V (`YUYV`).
    Yuyv,
    /// YUV 4:2:0: a Y plane, then one plane of interleaved U V at half resolution.
    Nv12,
    /// 8-bit grey.
    Gray,
    /// Packed 8-bit R G B (`RGB3`).
    Rgb,
    /// Packed 8-bit B G R (`BGR3`).
    Bgr,
}

impl FrameEncoding {
    /// The V4L2 name (fourcc) users see in `v4l2-ctl --list-formats`.
    pub fn name(self) -> &'static str {
        match self {
            FrameEncoding::Mjpeg => "MJPEG",
            FrameEncoding::Yuyv => "YUYV",
            FrameEncoding::Nv12 => "NV12",
            FrameEncoding::Gray => "GRAY",
            FrameEncoding::Rgb => "RGB3",
            FrameEncoding::Bgr => "BGR3",
        }
    }
}

impl std::fmt::Display for FrameEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Decodes one frame of `width`×`height` in `encoding` (MJPEG carries its own size).
pub fn decode_frame(
    data: &[u8],
    encoding: FrameEncoding,
    width: u32,
    height: u32,
) -> Result<RgbImage> {
    match encoding {
        FrameEncoding::Mjpeg => mjpeg_to_rgb(data),
        FrameEncoding::Yuyv => yuyv_to_rgb(data, width, height),
        FrameEncoding::Nv12 => nv12_to_rgb(data, width, height),
        FrameEncoding::Gray => packed_to_rgb(data, width, height, 1, |p| [p[0], p[0], p[0]]),
        FrameEncoding::Rgb => packed_to_rgb(data, width, height, 3, |p| [p[0], p[1], p[2]]),
        FrameEncoding::Bgr => packed_to_rgb(data, width, height, 3, |p| [p[2], p[1], p[0]]),
    }
}

/// Decodes an MJPEG frame with the `image` crate's JPEG decoder, first adding the standard
/// Huffman tables when the frame has none (see [`with_default_huffman`]). A frame cut short
/// (no end-of-image marker after the scan, as when USB drops packets) is an error: the decoder
/// would otherwise fill the missing part with grey.
pub fn mjpeg_to_rgb(data: &[u8]) -> Result<RgbImage> {
    let (scan, _) = first_scan(data)?;
    ensure!(
        data[scan..].windows(2).any(|m| m == [0xFF, 0xD9]),
        "truncated MJPEG frame ({} bytes, no end-of-image marker)",
        data.len()
    );
    let jpeg = with_default_huffman(data)?;
    let image = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg)
        .context("undecodable MJPEG frame")?;
    Ok(image.into_rgb8())
}

/// The JPEG with the standard Huffman tables of ITU T.81 Annex K.3 inserted before its first
/// scan if it has no DHT segment; unchanged otherwise.
///
/// UVC cameras commonly send MJPEG frames without tables (the AVI MJPEG convention: the decoder
/// is to assume those of K.3). `image`'s decoder (zune-jpeg) assumes them only when the frame
/// carries an `AVI1` APP0 marker, which many webcams omit, and otherwise fails.
pub fn with_default_huffman(jpeg: &[u8]) -> Result<Cow<'_, [u8]>> {
    let (scan, has_tables) = first_scan(jpeg)?;
    if has_tables {
        return Ok(Cow::Borrowed(jpeg));
    }
    let mut out = Vec::with_capacity(jpeg.len() + DEFAULT_DHT_LEN);
    out.extend_from_slice(&jpeg[..scan]);
    push_default_dht(&mut out);
    out.extend_from_slice(&jpeg[scan..]);
    Ok(Cow::Owned(out))
}

/// Walks the JPEG's header segments: the position of the first start-of-scan marker, and
/// whether a Huffman table segment (DHT) comes before it.
fn first_scan(jpeg: &[u8]) -> Result<(usize, bool)> {
    ensure!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG frame (no start-of-image marker)");
    let mut pos = 2;
    let mut has_tables = false;
    loop {
        // Markers are 0xFF then a code; any number of 0xFF fill bytes may precede the code.
        while jpeg.get(pos) == Some(&0xFF) && jpeg.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&code)) = (jpeg.get(pos), jpeg.get(pos + 1)) else {
            bail!("corrupt JPEG frame: no marker at byte {pos} of {}", jpeg.len());
        };
        match code {
            0xDA => return Ok((pos, has_tables)),
            0xD9 => bail!("corrupt JPEG frame: end of image before any scan"),
            // Markers without a length field.
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                has_tables |= code == 0xC4;
                let Some(len) = jpeg.get(pos + 2..pos + 4) else {
                    bail!("truncated JPEG frame ({} bytes)", jpeg.len());
                };
                pos += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
}

// ITU T.81 Annex K.3, tables K.3 to K.6: code lengths (counts per bit length 1–16) and values.
const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];
/// The four tables as one DHT segment: (class << 4 | id, bits, values).
const DEFAULT_TABLES: [(u8, &[u8; 16], &[u8]); 4] = [
    (0x00, &DC_LUMA_BITS, &DC_VALUES),
    (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES),
    (0x01, &DC_CHROMA_BITS, &DC_VALUES),
    (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES),
];
/// Marker (2) + length (2) + 4 × (class/id + 16 counts) + 12 + 162 + 12 + 162 values = 420.
const DEFAULT_DHT_LEN: usize = 420;

fn push_default_dht(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xFF, 0xC4]);
    out.extend_from_slice(&((DEFAULT_DHT_LEN - 2) as u16).to_be_bytes());
    for (class_id, bits, values) in DEFAULT_TABLES {
        out.push(class_id);
        out.extend_from_slice(bits);
        out.extend_from_slice(values);
    }
}

/// BT.601 limited range ("studio swing", Y 16–235, U/V 16–240), what V4L2 webcams send for
/// YUYV and NV12 unless they say otherwise; integer form of R = 1.164(Y−16) + 1.596(V−128),
/// G = 1.164(Y−16) − 0.392(U−128) − 0.813(V−128), B = 1.164(Y−16) + 2.017(U−128).
#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16) + 128;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clip = |x: i32| (x >> 8).clamp(0, 255) as u8;
    [clip(c + 409 * e), clip(c - 100 * d - 208 * e), clip(c + 516 * d)]
}

/// The bytes per row of a `height`-row plane area in `len` bytes whose rows hold at least
/// `min_row` bytes: V4L2 pads rows to `bytesperline`, which the buffer length reveals.
fn row_stride(len: usize, min_row: usize, rows: usize, what: &str) -> Result<usize> {
    let need = min_row * rows;
    ensure!(
        rows > 0 && min_row > 0 && len >= need,
        "{what} frame too short: {len} bytes, {need} needed for the announced size"
    );
    // Equal rows filling the buffer exactly: the padded stride; otherwise assume no padding
    // (a buffer rounded up beyond the last row).
    Ok(if len.is_multiple_of(rows) && len / rows >= min_row { len / rows } else { min_row })
}

/// YUYV (YUV 4:2:2, Y0 U Y1 V per pixel pair) to RGB, BT.601 limited range.
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32) -> Result<RgbImage> {
    ensure!(width.is_multiple_of(2), "YUYV frame with odd width {width}");
    let (w, h) = (width as usize, height as usize);
    let stride = row_stride(data.len(), w * 2, h, "YUYV")?;
    let mut out = vec![0u8; w * h * 3];
    for (src, dst) in data.chunks(stride).zip(out.chunks_exact_mut(w * 3)) {
        for (quad, px) in src[..w * 2].chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (u, v) = (quad[1], quad[3]);
            px[..3].copy_from_slice(&yuv_to_rgb(quad[0], u, v));
            px[3..].copy_from_slice(&yuv_to_rgb(quad[2], u, v));
        }
    }
    RgbImage::from_raw(width, height, out).context("YUYV frame size overflow")
}

/// NV12 (a Y plane, then interleaved U V at half width and half height) to RGB, BT.601 limited.
pub fn nv12_to_rgb(data: &[u8], width: u32, height: u32) -> Result<RgbImage> {
    ensure!(
        width.is_multiple_of(2) && height.is_multiple_of(2),
        "NV12 frame with odd size {width}×{height}"
    );
    let (w, h) = (width as usize, height as usize);
    // Y rows and UV rows share one stride: h + h/2 rows in all.
    let stride = row_stride(data.len(), w, h + h / 2, "NV12")?;
    let (luma, chroma) = data.split_at(stride * h);
    let mut out = vec![0u8; w * h * 3];
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let ys = &luma[row * stride..row * stride + w];
        let uvs = &chroma[(row / 2) * stride..(row / 2) * stride + w];
        for ((y, px), uv) in
            ys.chunks_exact(2).zip(dst.chunks_exact_mut(6)).zip(uvs.chunks_exact(2))
        {
            px[..3].copy_from_slice(&yuv_to_rgb(y[0], uv[0], uv[1]));
            px[3..].copy_from_slice(&yuv_to_rgb(y[1], uv[0], uv[1]));
        }
    }
    RgbImage::from_raw(width, height, out).context("NV12 frame size overflow")
}

/// Packed formats of `bpp` bytes per pixel (grey, RGB, BGR) to RGB.
fn packed_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    bpp: usize,
    pixel: impl Fn(&[u8]) -> [u8; 3],
) -> Result<RgbImage> {
    let (w, h) = (width as usize, height as usize);
    let stride = row_stride(data.len(), w * bpp, h, "packed")?;
    let mut out = vec![0u8; w * h * 3];
    for (src, dst) in data.chunks(stride).zip(out.chunks_exact_mut(w * 3)) {
        for (p, px) in src[..w * bpp].chunks_exact(bpp).zip(dst.chunks_exact_mut(3)) {
            px.copy_from_slice(&pixel(p));
        }
    }
    RgbImage::from_raw(width, height, out).context("frame size overflow")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use std::path::PathBuf;

    fn photo(name: &str) -> PathBuf {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
        assert!(path.is_file(), "{} is missing: run models/fetch first", path.display());
        path
    }

    /// A real photo at 640×480, the size webcams default to.
    fn photo_640x480() -> RgbImage {
        let image = image::open(photo("sample1.jpg")).expect("sample1.jpg decodes").into_rgb8();
        image::imageops::resize(&image, 640, 480, image::imageops::FilterType::Triangle)
    }

    /// The inverse of [`yuv_to_rgb`] (BT.601 limited range), in floating point, rounded.
    fn rgb_to_yuv(p: &[u8]) -> [f32; 3] {
        let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
        [
            16.0 + 0.257 * r + 0.504 * g + 0.098 * b,
            128.0 - 0.148 * r - 0.291 * g + 0.439 * b,
            128.0 + 0.439 * r - 0.368 * g - 0.071 * b,
        ]
    }

    fn byte(x: f32) -> u8 {
        x.round().clamp(0.0, 255.0) as u8
    }

    /// RGB to YUYV as a camera would: chroma averaged over each horizontal pair.
    fn rgb_to_yuyv(image: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        for pair in image.as_raw().chunks_exact(6) {
            let (a, b) = (rgb_to_yuv(&pair[..3]), rgb_to_yuv(&pair[3..]));
            out.extend_from_slice(&[
                byte(a[0]),
                byte((a[1] + b[1]) / 2.0),
                byte(b[0]),
                byte((a[2] + b[2]) / 2.0),
            ]);
        }
        out
    }

    /// RGB to NV12: chroma averaged over each 2×2 block.
    fn rgb_to_nv12(image: &RgbImage) -> Vec<u8> {
        let (w, h) = image.dimensions();
        let yuv = |x, y| rgb_to_yuv(&image.get_pixel(x, y).0);
        let mut out: Vec<u8> = image.pixels().map(|p| byte(rgb_to_yuv(&p.0)[0])).collect();
        for y in (0..h).step_by(2) {
            for x in (0..w).step_by(2) {
                let block = [yuv(x, y), yuv(x + 1, y), yuv(x, y + 1), yuv(x + 1, y + 1)];
                out.push(byte(block.iter().map(|p| p[1]).sum::<f32>() / 4.0));
                out.push(byte(block.iter().map(|p| p[2]).sum::<f32>() / 4.0));
            }
        }
        out
    }

    fn mean_abs_error(a: &RgbImage, b: &RgbImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let sum: u64 =
            a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
        sum as f64 / a.as_raw().len() as f64
    }

    /// The DHT segments removed, as a UVC camera sends its frames.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        while jpeg[pos + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
        out.extend_from_slice(&jpeg[pos..]);
        out
    }

    fn count_dht(jpeg: &[u8]) -> usize {
        jpeg.windows(2).filter(|w| w == &[0xFF, 0xC4]).count()
    }

    #[test]
    fn mjpeg_decodes_a_real_jpeg_as_image_does() {
        let path = photo("sample1.jpg");
        let bytes = std::fs::read(&path).expect("read sample1.jpg");
        let expected = image::open(&path).expect("decodes").into_rgb8();
        let decoded = mjpeg_to_rgb(&bytes).expect("MJPEG decode");
        assert_eq!(decoded.dimensions(), expected.dimensions());
        assert!(decoded.as_raw() == expected.as_raw(), "pixels differ from image::open");
    }

    #[test]
    fn mjpeg_without_huffman_tables_gets_the_standard_ones() {
        // A camera's encoder uses the K.3 tables, as image's JPEG encoder does.
        let mut full = Vec::new();
        JpegEncoder::new_with_quality(&mut full, 85)
            .encode_image(&photo_640x480())
            .expect("encode JPEG");
        assert_eq!(count_dht(&full[..full.len() - 2]), 4, "the encoder writes four tables");
        let stripped = strip_dht(&full);
        assert_eq!(count_dht(&stripped), 0);
        // Trailing garbage, as in a V4L2 mmap buffer longer than the frame.
        let mut buffer = stripped.clone();
        buffer.extend_from_slice(&[0x55; 1000]);

        // Why the table is inserted: image's decoder alone fails on such a frame.
        assert!(image::load_from_memory_with_format(&stripped, ImageFormat::Jpeg).is_err());

        let fixed = with_default_huffman(&buffer).expect("parse");
        assert!(matches!(fixed, Cow::Owned(_)));
        assert_eq!(fixed.len(), buffer.len() + DEFAULT_DHT_LEN);
        let expected = mjpeg_to_rgb(&full).expect("decode original");
        let decoded = mjpeg_to_rgb(&buffer).expect("decode stripped");
        assert!(decoded == expected, "stripped frame decodes differently");
        // A frame with its own tables is left alone.
        assert!(matches!(with_default_huffman(&full).expect("parse"), Cow::Borrowed(_)));
    }

    #[test]
    fn broken_mjpeg_frames_are_errors_not_panics() {
        let bytes = std::fs::read(photo("sample1.jpg")).expect("read sample1.jpg");
        for cut in [0, 1, 2, 3, 20, 200, bytes.len() / 2] {
            assert!(mjpeg_to_rgb(&bytes[..cut]).is_err(), "{cut} bytes decoded");
        }
        let err = mjpeg_to_rgb(&bytes[..bytes.len() - 100]).expect_err("cut frame decoded");
        assert!(err.to_string().starts_with("truncated MJPEG frame"), "{err:#}");
        let err = mjpeg_to_rgb(&[0x12; 4096]).expect_err("noise decoded");
        assert!(err.to_string().contains("not a JPEG frame"), "{err:#}");
    }

    #[test]
    fn yuyv_known_colours() {
        // BT.601 limited range: (Y, U, V) of black, white, red, green, blue, and Y beyond 235.
        let cases: [([u8; 3], [u8; 3]); 6] = [
            ([16, 128, 128], [0, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([81, 90, 240], [255, 0, 0]),
            ([145, 54, 34], [0, 255, 0]),
            ([41, 240, 110], [0, 0, 255]),
            ([255, 128, 128], [255, 255, 255]),
        ];
        for ([y, u, v], rgb) in cases {
            let image = yuyv_to_rgb(&[y, u, y, v], 2, 1).expect("convert");
            for px in image.pixels() {
                for (got, want) in px.0.iter().zip(rgb) {
                    assert!(got.abs_diff(want) <= 1, "YUV {y},{u},{v}: {:?} ≠ {rgb:?}", px.0);
                }
            }
        }
        // Mid grey: Y 126 is (126 − 16) × 255 / 219 = 128.1.
        assert_eq!(yuyv_to_rgb(&[126, 128, 126, 128], 2, 1).expect("convert").as_raw(), &[128; 6]);
    }

    #[test]
    fn yuyv_round_trip_of_a_real_photo() {
        let image = photo_640x480();
        let yuyv = rgb_to_yuyv(&image);
        assert_eq!(yuyv.len(), 640 * 480 * 2);
        let back = yuyv_to_rgb(&yuyv, 640, 480).expect("convert");
        let error = mean_abs_error(&image, &back);
        // Chroma at half horizontal resolution costs a little on edges; a wrong matrix, range
        // or byte order costs tens.
        assert!(error < 1.0, "mean abs error {error:.3}");
    }

    #[test]
    fn yuyv_rows_padded_to_bytesperline() {
        let image = photo_640x480();
        let yuyv = rgb_to_yuyv(&image);
        let mut padded = Vec::new();
        for row in yuyv.chunks_exact(640 * 2) {
            padded.extend_from_slice(row);
            padded.extend_from_slice(&[0xAB; 64]);
        }
        let plain = yuyv_to_rgb(&yuyv, 640, 480).expect("convert");
        assert!(yuyv_to_rgb(&padded, 640, 480).expect("convert padded") == plain);
        let err = yuyv_to_rgb(&yuyv[..1000], 640, 480).expect_err("short frame converted");
        assert!(err.to_string().contains("too short"), "{err:#}");
        assert!(yuyv_to_rgb(&yuyv, 639, 480).is_err());
    }

    #[test]
    fn nv12_round_trip_of_a_real_photo() {
        let image = photo_640x480();
        let nv12 = rgb_to_nv12(&image);
        assert_eq!(nv12.len(), 640 * 480 * 3 / 2);
        let back = nv12_to_rgb(&nv12, 640, 480).expect("convert");
        let error = mean_abs_error(&image, &back);
        assert!(error < 1.5, "mean abs error {error:.3}");
        // Red, as a 2×2 block.
        let red = nv12_to_rgb(&[81, 81, 81, 81, 90, 240], 2, 2).expect("convert");
        assert!(red.pixels().all(|p| p.0[0] == 255 && p.0[1] <= 1 && p.0[2] <= 1), "{red:?}");
        assert!(nv12_to_rgb(&nv12[..nv12.len() - 1], 640, 480).is_err());
    }

    #[test]
    fn packed_formats() {
        let bgr = decode_frame(&[1, 2, 3, 4, 5, 6], FrameEncoding::Bgr, 2, 1).expect("BGR");
        assert_eq!(bgr.as_raw(), &[3, 2, 1, 6, 5, 4]);
        let grey = decode_frame(&[9, 200], FrameEncoding::Gray, 2, 1).expect("GRAY");
        assert_eq!(grey.as_raw(), &[9, 9, 9, 200, 200, 200]);
    }
}
