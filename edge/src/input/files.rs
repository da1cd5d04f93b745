//! The image files behind the paths a user names: files as given, folders walked.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// File extensions taken from folders (a file named explicitly is always tried).
const IMAGE_EXTENSIONS: &[&str] =
    &["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif", "ppm", "pgm", "pnm"];

/// The inputs named on the command line, with folders expanded (recursively, sorted, images only,
/// hidden entries skipped). A path that cannot be listed becomes an `Err` for that path only.
pub fn expand_inputs(paths: &[PathBuf]) -> Vec<(PathBuf, Result<()>)> {
    let mut out = vec![];
    for path in paths {
        if path.is_dir() {
            walk(path, &mut out);
        } else if path.exists() {
            out.push((path.clone(), Ok(())));
        } else {
            out.push((path.clone(), Err(anyhow::anyhow!("no such file or folder"))));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Result<()>)>) {
    let entries = match std::fs::read_dir(dir).context("cannot list folder") {
        Ok(entries) => entries,
        Err(e) => return out.push((dir.to_path_buf(), Err(e))),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, out);
        } else if is_image_name(&path) {
            out.push((path, Ok(())));
        }
    }
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}
