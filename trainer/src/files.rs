//! Files the trainer writes: whole or not at all, and named by their content.

use anyhow::{Context, Result};
use std::path::Path;

/// Writes `path` through a temporary file beside it, renamed into place once `write` succeeded,
/// so a reader (a resumed run, a second crop pass) never sees half a file.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    write(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Lower-case hexadecimal, for content hashes in file names.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
