//! The image files behind the paths a user names: files as given, folders walked; and opening an
//! input file so that nothing but a regular file is ever read.

use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// File extensions taken from folders (a file named explicitly is always tried).
const IMAGE_EXTENSIONS: &[&str] =
    &["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif", "ppm", "pgm", "pnm"];

/// The inputs named on the command line, with folders expanded (recursively, sorted, images only,
/// hidden entries skipped). A path that cannot be listed, a FIFO, device or socket with an image's
/// name, and a link back to a folder already walked (which would loop) each become an `Err` for
/// that path only, so the caller names it and goes on.
pub fn expand_inputs(paths: &[PathBuf]) -> Vec<(PathBuf, Result<()>)> {
    let mut out = vec![];
    let mut walked = HashSet::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut walked, &mut out);
        } else if path.exists() {
            out.push((path.clone(), Ok(())));
        } else {
            out.push((path.clone(), Err(anyhow::anyhow!("no such file or folder"))));
        }
    }
    out
}

/// Lists `dir` into `out`, unless it (by its real path, links resolved) was walked already:
/// `D/s -> .` would otherwise walk `D` again without end.
fn walk(dir: &Path, walked: &mut HashSet<PathBuf>, out: &mut Vec<(PathBuf, Result<()>)>) {
    let real = match std::fs::canonicalize(dir).context("cannot list folder") {
        Ok(real) => real,
        Err(e) => return out.push((dir.to_path_buf(), Err(e))),
    };
    if !walked.insert(real.clone()) {
        let cause = anyhow::anyhow!(
            "{} was listed already (a link to it, or a loop): not walked again",
            real.display()
        );
        return out.push((dir.to_path_buf(), Err(cause)));
    }
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
        // Links followed: a linked folder or image is walked or read like a real one.
        let Ok(meta) = std::fs::metadata(&path) else {
            if is_image_name(&path) {
                out.push((path, Err(anyhow::anyhow!("a broken link"))));
            }
            continue;
        };
        if meta.is_dir() {
            walk(&path, walked, out);
        } else if is_image_name(&path) {
            let listed = if meta.is_file() { Ok(()) } else { Err(not_regular()) };
            out.push((path, listed));
        }
    }
}

/// A path as printed in text and JSON lines: as it is, unless it holds a control character (a
/// newline would split the line) or bytes that are not UTF-8 (two such names would print alike);
/// then with those escaped as Rust writes them (`\n`, `\xFF`), so each name stays one distinct
/// line's worth.
pub fn printable(path: &Path) -> String {
    match path.to_str() {
        Some(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => {
            let quoted = format!("{path:?}");
            quoted[1..quoted.len() - 1].to_owned()
        }
    }
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

fn not_regular() -> anyhow::Error {
    anyhow::anyhow!("not a regular file (a FIFO, device, socket or folder): not read")
}

/// Opens `path` for reading if it is a regular file (links followed). Anything else is refused
/// without blocking: opening a FIFO waits for a writer, forever, and a device may never end.
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // A FIFO opened without O_NONBLOCK blocks in open(2) until a writer comes; with it, the
        // open returns at once and the check below refuses the file. Regular files ignore it.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).context("cannot open")?;
    if !file.metadata().context("cannot open")?.is_file() {
        bail!(not_regular());
    }
    Ok(file)
}

/// The whole of a regular file (see [`open_regular`]).
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = vec![];
    open_regular(path)?.read_to_end(&mut bytes).context("cannot read")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn names_with_newlines_or_bytes_that_are_not_utf8_print_escaped_and_distinct() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(printable(Path::new("d/plain name.jpg")), "d/plain name.jpg");
        assert_eq!(printable(Path::new("d/new\nline.jpg")), "d/new\\nline.jpg");
        let a = printable(Path::new(std::ffi::OsStr::from_bytes(b"bad\xff.png")));
        let b = printable(Path::new(std::ffi::OsStr::from_bytes(b"bad\xfe.png")));
        assert_eq!(a, "bad\\xFF.png");
        assert_ne!(a, b);
    }

    /// A folder with two links to itself, a link to a sibling, a broken link and a FIFO named
    /// like an image: every image is listed once, each loop and the FIFO is an error naming it,
    /// and reading the FIFO is refused at once instead of blocking.
    #[cfg(unix)]
    #[test]
    fn links_are_followed_once_and_a_fifo_is_never_opened_for_reading() {
        use std::os::unix::fs::symlink;
        let tmp = testkit::Scratch::new("walk-links");
        let dir = tmp.join("d");
        std::fs::create_dir_all(dir.join("sub")).expect("folders");
        std::fs::write(dir.join("a.jpg"), b"x").expect("image");
        std::fs::write(dir.join("sub/b.png"), b"x").expect("image");
        symlink(".", dir.join("s1")).expect("link");
        symlink(".", dir.join("s2")).expect("link");
        symlink("sub", dir.join("t")).expect("link");
        symlink("missing.jpg", dir.join("gone.jpg")).expect("link");
        let fifo = dir.join("x.jpg");
        let name = std::ffi::CString::new(fifo.to_str().expect("UTF-8")).expect("C string");
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");

        let listed = expand_inputs(std::slice::from_ref(&dir));
        let ok: Vec<&Path> =
            listed.iter().filter(|(_, r)| r.is_ok()).map(|(p, _)| p.as_path()).collect();
        assert_eq!(ok, [dir.join("a.jpg"), dir.join("sub/b.png")]);
        let errors: Vec<(String, String)> = listed
            .iter()
            .filter_map(|(p, r)| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                r.as_ref().err().map(|e| (name, e.to_string()))
            })
            .collect();
        let cause = |name: &str| {
            errors.iter().find(|(n, _)| n == name).map(|(_, c)| c.as_str()).unwrap_or_default()
        };
        assert!(cause("gone.jpg").contains("broken link"), "{errors:?}");
        assert!(cause("s1").contains("listed already"), "{errors:?}");
        assert!(cause("s2").contains("listed already"), "{errors:?}");
        assert!(cause("t").contains("listed already"), "{errors:?}");
        assert!(cause("x.jpg").contains("not a regular file"), "{errors:?}");
        assert_eq!(errors.len(), 5, "{errors:?}");

        let err = read_regular(&fifo).expect_err("a FIFO is refused");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(read_regular(&dir).is_err());
        assert_eq!(read_regular(&dir.join("a.jpg")).expect("regular file"), b"x");
    }
}
