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
        let origin = crate::input::files::printable(path);
        // The error names the frame's file: the loop's line names only the folder.
        let image = crate::input::decode::open(path)
            .map_err(|e| SourceError::Frame(e.context(origin.clone())))?;
        Ok(Some(Frame { image, seq, captured: Instant::now(), origin }))
    }

    fn describe(&self) -> String {
        format!("folder {} ({} images)", self.dir.display(), self.paths.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame deleted after the folder was listed is an error of that frame naming its file
    /// (it named only the folder), and the next frame still plays.
    #[test]
    fn a_frame_deleted_after_listing_is_named_and_the_next_plays() {
        let dir = testkit::Scratch::new("folder-deleted-frame");
        let photo = std::fs::read(testkit::photo("astronaut.png")).expect("the photo");
        let (gone, kept) = (dir.write("a.png", &photo), dir.write("b.png", photo));
        let mut source = FolderSource::open(&dir, false, None).expect("opens");
        std::fs::remove_file(&gone).expect("deletes a frame");
        let Err(SourceError::Frame(e)) = source.next_frame() else {
            panic!("the deleted frame is not a frame error")
        };
        let line = crate::error::one_line(&e);
        assert!(line.starts_with(&gone.display().to_string()), "{line}");
        let next = source.next_frame().expect("the next frame").expect("a frame");
        assert_eq!(next.origin, kept.display().to_string());
        assert!(matches!(source.next_frame(), Ok(None)));
    }
}
