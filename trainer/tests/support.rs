//! Helpers shared by the trainer's integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Every fetched photo with a face: 35 faces in 13 photos (coffee.png and chelsea.png have none).
pub const PHOTOS_WITH_FACES: [&str; 13] = [
    "astronaut.png",
    "breakingbad.jpg",
    "einstein.jpg",
    "lenna.png",
    "sample1.jpg",
    "sample2.jpg",
    "sample3.jpg",
    "sample4.jpg",
    "sample5.jpg",
    "sample6.jpg",
    "t1.jpg",
    "takeo.ppm",
    "tongue.jpg",
];

pub fn photo(name: &str) -> PathBuf {
    let path = root().join("edge/tests/data").join(name);
    assert!(path.is_file(), "{} is missing: run models/fetch first", path.display());
    path
}

/// A temporary folder, deleted with everything in it when dropped (a failing test too).
pub struct RunFolder(PathBuf);

impl std::ops::Deref for RunFolder {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for RunFolder {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An empty temporary folder named `prefix-<pid>` whose `data/real/` holds five real photos.
pub fn fresh_run_folder(prefix: &str) -> RunFolder {
    run_folder_with(
        prefix,
        &["astronaut.png", "lenna.png", "einstein.jpg", "takeo.ppm", "tongue.jpg"],
    )
}

/// An empty temporary folder named `prefix-<pid>` whose `data/real/` holds the named photos.
pub fn run_folder_with(prefix: &str, photos: &[&str]) -> RunFolder {
    let tmp = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let real = tmp.join("data/real");
    std::fs::create_dir_all(&real).expect("mkdir");
    for name in photos {
        std::fs::copy(photo(name), real.join(name)).expect("copy");
    }
    RunFolder(tmp)
}

/// The real `trainer` binary with `args`, then each flag and its path.
pub fn bare_trainer(args: &[&str], paths: &[(&str, &Path)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.env("EDGE_MODELS", root().join("models")).args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    command.output().expect("trainer runs")
}
