//! How `trainer eval`, `trainer calibrate` and `trainer fakes` find and cut faces: the same
//! options, and defaults, as `edge --file`.

use clap::Args;
use edge::range::within;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct FaceArgs {
    /// Use every face of an image [default: only the largest, one per image].
    #[arg(long)]
    pub all_faces: bool,
    #[command(flatten)]
    pub detector: DetectorArgs,
}

#[derive(Args, Debug)]
pub struct DetectorArgs {
    /// Face detector file [default: <models>/face_detection_full_range.tflite].
    #[arg(long, value_name = "PATH")]
    detector: Option<PathBuf>,
    /// Folder of the detector files.
    #[arg(long, env = "EDGE_MODELS", default_value = "models", value_name = "DIR")]
    models: PathBuf,
    #[arg(long, default_value_t = edge::infer::crop::DEFAULT_MARGIN,
          value_parser = within(0.0f32, edge::infer::crop::MAX_MARGIN))]
    pub margin: f32,
    #[arg(long, default_value_t = edge::DetectorConfig::default().min_score,
          value_parser = within(0.0f32, 1.0))]
    pub min_score: f32,
}

impl DetectorArgs {
    /// The detector file: `--detector`, else the full-range model in `--models`.
    pub fn path(&self) -> PathBuf {
        self.detector
            .clone()
            .unwrap_or_else(|| self.models.join(edge::infer::model_files::FULL_RANGE_FILE))
    }
}

/// The crop cache's folder: `$XDG_CACHE_HOME/deepfake-edge/crops`, else under `~/.cache`.
pub fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("deepfake-edge").join("crops")
}
