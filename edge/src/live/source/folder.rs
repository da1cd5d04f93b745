//! A folder played as a camera.

use super::frame::{Frame, FrameSource, SourceError};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A folder of images played as frames, in name order (recursively, as `edge --file` lists
/// folders): the camera's stand-in for tests and benchmarks.
pub struct FolderSource {
    dir: PathBuf,
    paths: Vec<PathBuf>,
    /// Entries left out when the folder was listed (a FIFO, a link loop), with the cause.
    skipped: Vec<(PathBuf, String)>,
    next: usize,
    seq: u64,
    looping: bool,
    /// Paces frames like a camera at this rate; `None` reads as fast as the loop asks.
    interval: Option<Duration>,
    due: Option<Instant>,
}

impl FolderSource {
    /// Lists the images of `dir`; fails if it cannot be listed or holds no image. Entries that
    /// cannot be read as images (a FIFO, a link loop) are left out: see [`FolderSource::skipped`].
    pub fn open(dir: &Path, looping: bool, fps: Option<f64>) -> Result<Self> {
        let (mut paths, mut skipped) = (vec![], vec![]);
        for (path, listed) in crate::input::files::expand_inputs(&[dir.to_path_buf()]) {
            match listed {
                Ok(()) => paths.push(path),
                Err(e) if path == dir => {
                    return Err(e.context(format!("frames folder {}", path.display())))
                }
                Err(e) => skipped.push((path, crate::error::one_line(&e))),
            }
        }
        if !dir.is_dir() {
            bail!("frames folder {}: not a folder", dir.display());
        }
        if paths.is_empty() {
            bail!("frames folder {}: no images in it", dir.display());
        }
        let interval = match fps {
            Some(f) if f.is_finite() && f > 0.0 => Some(Duration::from_secs_f64(1.0 / f)),
            Some(f) => bail!("frame rate {f}: must be a positive number"),
            None => None,
        };
        Ok(FolderSource {
            dir: dir.to_path_buf(),
            paths,
            skipped,
            next: 0,
            seq: 0,
            looping,
            interval,
            due: None,
        })
    }
}

impl FolderSource {
    /// The entries of the folder left out, with the cause.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.next == self.paths.len() {
            if !self.looping {
                return Ok(None);
            }
            self.next = 0;
        }
        if let Some(interval) = self.interval {
            let due = self.due.unwrap_or_else(Instant::now);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // A slow reader does not make the "camera" burst to catch up.
            self.due = Some(due.max(Instant::now() - interval) + interval);
        }
        let path = &self.paths[self.next];
        self.next += 1;
        let seq = self.seq;
        self.seq += 1;
        let image = crate::input::decode::open(path).map_err(SourceError::Frame)?;
        Ok(Some(Frame { image, seq, captured: Instant::now(), origin: path.display().to_string() }))
    }

    fn describe(&self) -> String {
        format!("folder {} ({} images)", self.dir.display(), self.paths.len())
    }
}
