//! Names the trainer gives files by their content, and the one way it writes a file.

use anyhow::{Context, Result};
use std::path::Path;

/// `std::fs::write` whose error names the file (the bare OS error says only "Operation not
/// permitted").
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Lower-case hexadecimal, for content hashes in file names.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
