//! `--snapshots DIR`: the annotated frame, whenever a face turns FAKE.

use super::annotate::annotated;
use crate::infer::classify::Label;
use crate::live::source::Frame;
use crate::live::{EventKind, FrameResult, Sink};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Writes `<time>-track<id>.jpg` into its folder for each face of a frame that appeared as, or
/// changed to, FAKE.
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// Creates the folder (a folder that cannot be made fails at start-up).
    pub fn new(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create snapshot folder {}", dir.display()))?;
        Ok(Snapshots { dir })
    }
}

impl Sink for Snapshots {
    fn name(&self) -> &str {
        "snapshot"
    }

    fn frame(&mut self, frame: &Frame, result: &FrameResult) -> Result<()> {
        let turned_fake = result.events.iter().filter(|e| {
            e.label == Some(Label::Fake)
                && matches!(e.event, EventKind::Appeared | EventKind::LabelChanged)
        });
        let mut image = None;
        for event in turned_fake {
            let image = image.get_or_insert_with(|| annotated(&frame.image, result));
            let stamp: String = event.time.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let path = self.dir.join(format!("{stamp}-track{}.jpg", event.track));
            image.save(&path).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}
