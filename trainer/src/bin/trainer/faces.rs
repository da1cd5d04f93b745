//! How `trainer eval` and `trainer calibrate` find and cut faces: the same options, and defaults,
//! as `edge --file`.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct FaceArgs {
    /// Use every face of an image [default: only the largest, one per image].
    #[arg(long)]
    pub all_faces: bool,
    /// Face detector file [default: <models>/face_detection_full_range.tflite].
    #[arg(long, value_name = "PATH")]
    detector: Option<PathBuf>,
    /// Folder of the detector files.
    #[arg(long, env = "EDGE_MODELS", default_value = "models", value_name = "DIR")]
    models: PathBuf,
    #[arg(long, default_value_t = edge::infer::crop::DEFAULT_MARGIN)]
    pub margin: f32,
    #[arg(long, default_value_t = edge::DetectorConfig::default().min_score)]
    pub min_score: f32,
}

impl FaceArgs {
    /// The detector file: `--detector`, else the full-range model in `--models`.
    pub fn detector(&self) -> PathBuf {
        self.detector
            .clone()
            .unwrap_or_else(|| self.models.join(edge::infer::model_files::FULL_RANGE_FILE))
    }
}
