//! Helpers shared by the trainer's integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

pub fn photo(name: &str) -> PathBuf {
    let path = root().join("edge/tests/data").join(name);
    assert!(path.is_file(), "{} is missing: run models/fetch first", path.display());
    path
}

/// An empty temporary folder named `prefix-<pid>` whose `data/real/` holds five real photos.
pub fn fresh_run_folder(prefix: &str) -> PathBuf {
    run_folder_with(
        prefix,
        &["astronaut.png", "lenna.png", "einstein.jpg", "takeo.ppm", "tongue.jpg"],
    )
}

/// An empty temporary folder named `prefix-<pid>` whose `data/real/` holds the named photos.
pub fn run_folder_with(prefix: &str, photos: &[&str]) -> PathBuf {
    let tmp = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let real = tmp.join("data/real");
    std::fs::create_dir_all(&real).expect("mkdir");
    for name in photos {
        std::fs::copy(photo(name), real.join(name)).expect("copy");
    }
    tmp
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
