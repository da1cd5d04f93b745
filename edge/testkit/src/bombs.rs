//! Small image files that claim huge images (decompression bombs), and cut-off files: made by the
//! tests, a few bytes each, never committed.

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

/// A PNG claiming `width`×`height` (8-bit, `colour`: 2 RGB, 6 RGBA): its signature, IHDR, the
/// start of a zlib stream as IDAT, and IEND; under 100 bytes.
pub fn png_header(width: u32, height: u32, colour: u8) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, colour, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", vec![0x78, 0x9c]), (b"IEND", vec![])] {
        let mut chunk = kind.to_vec();
        chunk.extend(&data);
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(&chunk);
        png.extend(crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A 35-byte GIF whose screen and one frame claim `side`×`side`: a two-colour table and an LZW
/// stream of just a clear and an end code. Before the decoder limit was checked, a 16384² one
/// made `edge` fill a 1 GiB canvas (328 MB peak here, 1.9 GB with two threads).
pub fn gif(side: u16) -> Vec<u8> {
    let [lo, hi] = side.to_le_bytes();
    let mut gif = b"GIF89a".to_vec();
    gif.extend([lo, hi, lo, hi, 0x80, 0, 0]); // the screen, a 2-colour global table
    gif.extend([0, 0, 0, 255, 255, 255]);
    gif.extend([0x2c, 0, 0, 0, 0, lo, hi, lo, hi, 0x00]); // the frame
    gif.extend([0x02, 0x02, 0x2c, 0x00, 0x00]); // LZW code size 2; clear, end
    gif.push(0x3b);
    gif
}

/// `jpeg` (a baseline JPEG) with its frame header (SOF0) rewritten to claim `width`×`height`:
/// the decoder sees a huge image from a small file. Made of a real photo, it once made `edge`
/// decode 16000² at 854 MB peak.
pub fn jpeg_claiming(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = jpeg.to_vec();
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).expect("a baseline JPEG has SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

/// `img` as a baseline JPEG of `quality`.
pub fn jpeg_of(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = vec![];
    JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(img).expect("JPEG encodes");
    bytes
}

/// An 8×8 PNG carrying an ICC profile of `profile_len` zero bytes, compressed (a 128 MiB profile
/// makes a file of about 130 KB).
pub fn png_with_icc(profile_len: usize) -> Vec<u8> {
    use image::ImageEncoder;
    let mut bytes = vec![];
    let mut encoder = image::codecs::png::PngEncoder::new(&mut bytes);
    encoder.set_icc_profile(vec![0; profile_len]).expect("ICC profile");
    encoder.write_image(&[90; 3 * 8 * 8], 8, 8, image::ExtendedColorType::Rgb8).expect("PNG");
    bytes
}
