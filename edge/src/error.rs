//! Errors as users read them.

/// The error and its causes on one line (some causes, like flatbuffer errors or burn's, span
/// several).
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
