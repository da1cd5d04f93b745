//! Files written whole or not at all.

use anyhow::{Context, Result};
use std::path::Path;

/// Writes `path` through a temporary file beside it, renamed into place once `write` succeeded,
/// so a reader (`edge` loading a calibrated model, a resumed training run, a second crop pass)
/// never sees half a file.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    write(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
