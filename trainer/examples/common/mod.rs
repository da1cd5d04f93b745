//! What the probes among the examples share.

use anyhow::{Context, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// The images of a folder (not its subfolders) and their file names, sorted by name; unreadable
/// ones are reported and skipped.
pub fn crops(dir: &Path) -> Result<Vec<(String, RgbImage)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut out = vec![];
    for path in paths {
        match image::open(&path) {
            Ok(img) => {
                let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                out.push((name, img.to_rgb8()));
            }
            Err(e) => eprintln!("skipped {}: {e}", path.display()),
        }
    }
    Ok(out)
}
