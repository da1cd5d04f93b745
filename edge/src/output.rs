//! Files written whole or not at all, into folders checked to be writable before work starts.

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

/// Creates `dir` if needed and writes (then removes) a probe file in it, so that a folder that
/// cannot be written fails before any work is done rather than after every input was processed.
pub fn check_writable(dir: &Path) -> Result<()> {
    let cause = || format!("{}: cannot write files there", dir.display());
    std::fs::create_dir_all(dir).with_context(cause)?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(cause)?;
    std::fs::remove_file(&probe).with_context(cause)
}
