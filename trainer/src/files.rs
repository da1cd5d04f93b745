//! Names the trainer gives files by their content.

/// Lower-case hexadecimal, for content hashes in file names.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
