//! Image files to RGB pixels: format sniffed from content, decoder memory bounded, EXIF orientation
//! applied, and grey, alpha and 16-bit images brought to 8-bit RGB.

use anyhow::{bail, Context, Result};
use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest accepted width or height. Camera and phone photos are far below it; a file claiming
/// more is corrupt or hostile, and is refused before any pixel memory is allocated.
pub const MAX_SIDE: u32 = 16_384;
/// The default of [`max_alloc`] (bytes): about 179 megapixels of 8-bit RGB, 76 of RGBA.
pub const DEFAULT_MAX_ALLOC: u64 = 512 << 20;
static MAX_ALLOC: AtomicU64 = AtomicU64::new(DEFAULT_MAX_ALLOC);

/// Largest memory a decode may take (bytes): the decoder's buffer, a rotated copy for an EXIF
/// orientation that turns the image, and the 8-bit RGB copy, together. Checked from the header
/// before any pixel memory is allocated.
pub fn max_alloc() -> u64 {
    MAX_ALLOC.load(Ordering::Relaxed)
}

/// Sets [`max_alloc`] for the whole process, once at start-up (`edge --max-image-mb`, a board
/// profile's `max-image-mb`): a Pi Zero 2 W with 512 MB cannot give one image 512 MiB.
pub fn set_max_alloc(bytes: u64) {
    MAX_ALLOC.store(bytes, Ordering::Relaxed);
}

/// Largest PNG metadata (bytes): ICC profiles are a few kilobytes to a few hundred, and edge
/// uses none of it. Inflating up to this limit is what a metadata bomb costs (it was 16 MiB,
/// which showed as 20 MB of peak memory).
pub const MAX_PNG_METADATA: u64 = 2 << 20;

/// Decodes an image file into upright 8-bit RGB. Only a regular file is read (see
/// [`super::files::open_regular`]).
pub fn open(path: &Path) -> Result<RgbImage> {
    from_memory(&super::files::read_regular(path)?)
}

/// Decodes an image file already read into memory, as [`open`] decodes the file.
pub fn from_memory(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.is_empty() {
        bail!("empty file");
    }
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().context("cannot read")?;
    let Some(format) = reader.format() else {
        bail!("not an image (unrecognised content)");
    };
    reader.limits(limits_for(format));
    // into_decoder checks the dimensions only; the memory the whole decode will take is checked
    // here from the header, before the decoder allocates it.
    let mut decoder = reader.into_decoder().map_err(explain)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (w, h) = decoder.dimensions();
    let turns = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let decoded = decoder.total_bytes();
    let rgb = u64::from(w) * u64::from(h) * 3;
    let needed = decoded
        + if turns { decoded } else { 0 }
        + if decoder.color_type() == image::ColorType::Rgb8 { 0 } else { rgb };
    if needed > max_alloc() {
        bail!(
            "cannot decode: a {w}×{h} image needs {} MiB, above the decoder limit of {} MiB",
            needed >> 20,
            max_alloc() >> 20
        );
    }
    truncated(format, bytes)?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(explain)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// The decoder's limits. The PNG decoder spends `max_alloc` on metadata alone (a compressed ICC
/// profile, text chunks; one over it is dropped and the pixels still decode), so for PNG it is
/// set low, the pixels being checked from the header as for every format: a 1.4 MB PNG whose ICC
/// profile inflated to 598 MB took that much memory.
fn limits_for(format: ImageFormat) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc =
        Some(if format == ImageFormat::Png { MAX_PNG_METADATA } else { max_alloc() });
    limits
}

/// Refuses a file whose end is missing where the format says where its end is, rather than
/// classifying the grey rest of a half-decoded image: a JPEG must end its last scan with an EOI
/// marker, and a WebP must be as long as its RIFF header says. (The PNG, GIF, BMP and TIFF
/// decoders fail on missing pixel data by themselves.)
fn truncated(format: ImageFormat, bytes: &[u8]) -> Result<()> {
    let marker = |m: u8| bytes.windows(2).rposition(|w| w == [0xff, m]);
    match format {
        // Inside entropy-coded data every 0xFF byte is followed by 0x00 (or a restart marker),
        // so 0xFF 0xD9 after the last start-of-scan (0xFF 0xDA) is the image's real end.
        ImageFormat::Jpeg => match (marker(0xda), marker(0xd9)) {
            (Some(scan), Some(end)) if end > scan => Ok(()),
            _ => bail!("truncated: the JPEG data ends before its end-of-image marker"),
        },
        ImageFormat::WebP if bytes.len() >= 8 => {
            let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as u64 + 8;
            if (bytes.len() as u64) < declared {
                bail!("truncated: {} of the {declared} bytes its header announces", bytes.len());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn explain(e: image::ImageError) -> anyhow::Error {
    match e {
        image::ImageError::Limits(_) => anyhow::anyhow!(
            "cannot decode: image exceeds the decoder limit ({MAX_SIDE} px a side, {} MiB)",
            max_alloc() >> 20
        ),
        e => anyhow::Error::new(e).context("cannot decode"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::bombs;

    fn refused(bytes: &[u8]) -> String {
        from_memory(bytes).map(|_| ()).expect_err("refused").to_string()
    }

    /// Files of a few bytes claiming gigabytes of pixels are refused from their header, before
    /// the decoder allocates (issue 27: the GIF and RGBA PNG were decoded at 1.9 GB peak).
    #[test]
    fn small_files_claiming_huge_images_are_refused_from_the_header() {
        let gif = bombs::gif(16_384);
        assert_eq!(gif.len(), 35);
        let t1 = std::fs::read(testkit::photo("t1.jpg")).expect("t1.jpg");
        for (name, bytes) in [
            ("gif", gif),
            ("rgba png", bombs::png_header(16_384, 16_384, 6)),
            ("jpeg", bombs::jpeg_claiming(&t1, 16_000, 16_000)),
        ] {
            let err = refused(&bytes);
            assert!(err.contains("above the decoder limit"), "{name}: {err}");
        }
        // Beyond the side limit, whatever the memory.
        assert!(refused(&bombs::png_header(16_385, 1, 2)).contains("decoder limit"));
    }

    /// An ICC profile inflating beyond the PNG metadata limit is dropped, not held in memory; a
    /// profile of real size is kept; the pixels decode either way.
    #[test]
    fn png_metadata_is_bounded() {
        let profile = |png: &[u8]| {
            let mut reader = ImageReader::new(Cursor::new(png));
            reader.set_format(ImageFormat::Png);
            reader.limits(limits_for(ImageFormat::Png));
            reader.into_decoder().expect("decoder").icc_profile().expect("profile").map(|p| p.len())
        };
        let bomb = bombs::png_with_icc(64 << 20);
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        assert_eq!(profile(&bomb), None);
        assert_eq!(from_memory(&bomb).expect("pixels").dimensions(), (8, 8));
        assert_eq!(profile(&bombs::png_with_icc(4 << 10)), Some(4 << 10));
        assert_eq!(profile(&bombs::png_with_icc(1 << 20)), Some(1 << 20));
    }

    /// A JPEG or WebP cut short is an error, not a half-grey image; the whole file, and a JPEG
    /// with bytes after its end, decode.
    #[test]
    fn truncated_files_are_errors() {
        let photo = open(&testkit::photo("astronaut.png")).expect("photo");
        let jpeg = bombs::jpeg_of(&photo, 90);
        assert_eq!(from_memory(&jpeg).expect("whole JPEG").dimensions(), photo.dimensions());
        let mut trailing = jpeg.clone();
        trailing.extend(b"trailing bytes after the image");
        assert!(from_memory(&trailing).is_ok());
        for percent in [25, 50, 90, 99] {
            let err = refused(&jpeg[..jpeg.len() * percent / 100]);
            assert!(err.contains("truncated"), "JPEG at {percent} %: {err}");
        }
        let mut webp = vec![];
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .encode(photo.as_raw(), photo.width(), photo.height(), image::ExtendedColorType::Rgb8)
            .expect("WebP encodes");
        assert!(from_memory(&webp).is_ok());
        let err = refused(&webp[..webp.len() * 9 / 10]);
        assert!(err.contains("truncated") && err.contains("bytes its header announces"), "{err}");
    }
}
