//! Helpers shared by the trainer's integration tests (beside the workspace's `testkit`).

use std::path::Path;
use std::process::Command;
pub use testkit::{photo, root, Scratch};

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

/// A fresh scratch folder whose `data/real/` holds five real photos.
pub fn fresh_run_folder(prefix: &str) -> Scratch {
    run_folder_with(
        prefix,
        &["astronaut.png", "lenna.png", "einstein.jpg", "takeo.ppm", "tongue.jpg"],
    )
}

/// A fresh scratch folder whose `data/real/` holds the named photos.
pub fn run_folder_with(prefix: &str, photos: &[&str]) -> Scratch {
    let tmp = Scratch::new(prefix);
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
