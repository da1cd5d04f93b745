//! The training images: class folders found under each `--data` root, merged, exact duplicates
//! removed by content hash.
//!
//! A root may hold the original project's `training_real/` and `training_fake/`, or plain `real/`
//! and `fake/`, itself or up to two levels down (the Kaggle archive nests them as
//! `real_and_fake_face_detection/real_and_fake_face/`, and ships a second copy one level deeper,
//! which the content hash then drops). A root with real faces only is accepted: self-blended fakes
//! can supply the other class.

use crate::files::hex;
use anyhow::{bail, Result};
use edge::Label;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Folder names of each class, in the two layouts.
const REAL_DIRS: [&str; 2] = ["training_real", "real"];
const FAKE_DIRS: [&str; 2] = ["training_fake", "fake"];

/// One training image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    pub label: Label,
    /// SHA-256 of the file's bytes, hex: the duplicate check and the crop cache key.
    pub hash: String,
    /// Index of the `--data` root it came from.
    pub source: usize,
}

/// All samples of all roots, and what was left out.
#[derive(Debug, Default)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    /// Files that could not be read, with the cause.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Files dropped because an earlier file had the same bytes.
    pub duplicates: Vec<PathBuf>,
}

impl Dataset {
    /// Number of samples of `label` from root `source`.
    pub fn count(&self, source: usize, label: Label) -> usize {
        self.samples.iter().filter(|s| s.source == source && s.label == label).count()
    }
}

/// The class folders under `root`: (folder, label).
pub fn class_folders(root: &Path) -> Vec<(PathBuf, Label)> {
    let mut found = vec![];
    let mut level = vec![root.to_path_buf()];
    for _depth in 0..3 {
        let mut next = vec![];
        for dir in &level {
            for (names, label) in [(REAL_DIRS, Label::Real), (FAKE_DIRS, Label::Fake)] {
                for name in names {
                    if dir.join(name).is_dir() {
                        found.push((dir.join(name), label));
                    }
                }
            }
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut children: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
            children.sort();
            next.extend(children.into_iter().filter(|c| {
                let name =
                    c.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                !REAL_DIRS.contains(&name.as_str()) && !FAKE_DIRS.contains(&name.as_str())
            }));
        }
        level = next;
    }
    found
}

/// Scans every root. Fails only when a root has no class folder at all.
pub fn scan(roots: &[PathBuf]) -> Result<Dataset> {
    let mut data = Dataset::default();
    let mut seen = HashSet::new();
    for (source, root) in roots.iter().enumerate() {
        let folders = class_folders(root);
        if folders.is_empty() {
            bail!(
                "{}: no class folders (training_real/ and training_fake/, or real/ and fake/) \
                 in it or two levels below",
                root.display()
            );
        }
        for (folder, label) in folders {
            for (path, listed) in edge::input::files::expand_inputs(&[folder]) {
                let bytes = listed.and_then(|()| edge::input::files::read_regular(&path));
                match bytes {
                    Err(e) => data.unreadable.push((path, format!("{e:#}"))),
                    Ok(bytes) => {
                        let hash = hex(&Sha256::digest(&bytes));
                        if seen.insert(hash.clone()) {
                            data.samples.push(Sample { path, label, hash, source });
                        } else {
                            data.duplicates.push(path);
                        }
                    }
                }
            }
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn kaggle_layout_nested_and_duplicated_merges_with_a_plain_root() {
        let tmp = std::env::temp_dir().join(format!("trainer-dataset-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let kaggle = tmp.join("real_and_fake_face_detection");
        let inner = kaggle.join("real_and_fake_face");
        touch(&inner.join("training_real/real_00001.jpg"), b"r1");
        touch(&inner.join("training_real/real_00002.jpg"), b"r2");
        touch(&inner.join("training_fake/easy_1_1111.jpg"), b"f1");
        // The archive's second copy, one level deeper: same bytes, dropped as duplicates.
        let copy = kaggle.join("real_and_fake_face_detection/real_and_fake_face");
        touch(&copy.join("training_real/real_00001.jpg"), b"r1");
        touch(&copy.join("training_fake/easy_1_1111.jpg"), b"f1");
        let plain = tmp.join("mine");
        touch(&plain.join("real/a.png"), b"r3");
        touch(&plain.join("fake/b.png"), b"f2");
        touch(&plain.join("fake/notes.txt"), b"not an image name");

        let data = scan(&[kaggle, plain]).expect("scans");
        assert_eq!((data.count(0, Label::Real), data.count(0, Label::Fake)), (2, 1));
        assert_eq!((data.count(1, Label::Real), data.count(1, Label::Fake)), (1, 1));
        assert_eq!(data.duplicates.len(), 2, "{:?}", data.duplicates);
        assert!(data.unreadable.is_empty());

        let err = scan(&[tmp.join("mine/real")]).expect_err("no class folders");
        assert!(format!("{err}").contains("no class folders"), "{err}");
    }
}
