//! Image files to RGB pixels: format sniffed from content, decoder memory bounded, EXIF orientation
//! applied, and grey, alpha and 16-bit images brought to 8-bit RGB.

use anyhow::{bail, Context, Result};
use image::{ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

/// Largest accepted width or height. Camera and phone photos are far below it; a file claiming
/// more is corrupt or hostile, and is refused before any pixel memory is allocated.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoder allocation (bytes): a 16-bit RGBA image of about 64 megapixels.
pub const MAX_ALLOC: u64 = 512 << 20;

/// Decodes an image file into upright 8-bit RGB.
pub fn open(path: &Path) -> Result<RgbImage> {
    let file = super::files::open_regular(path)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        bail!("empty file");
    }
    decode(ImageReader::new(BufReader::new(file)))
}

/// Decodes an image file already read into memory, as [`open`] decodes the file.
pub fn from_memory(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.is_empty() {
        bail!("empty file");
    }
    decode(ImageReader::new(Cursor::new(bytes)))
}

fn decode<R: BufRead + Seek>(reader: ImageReader<R>) -> Result<RgbImage> {
    let mut reader = reader.with_guessed_format().context("cannot read")?;
    if reader.format().is_none() {
        bail!("not an image (unrecognised content)");
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(explain)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(explain)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

fn explain(e: image::ImageError) -> anyhow::Error {
    match e {
        image::ImageError::Limits(_) => anyhow::anyhow!(
            "cannot decode: image exceeds the decoder limit ({MAX_SIDE} px a side, {} MiB)",
            MAX_ALLOC >> 20
        ),
        e => anyhow::Error::new(e).context("cannot decode"),
    }
}
