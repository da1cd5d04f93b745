//! Command-line options shared by `edge` and `edge bench`, and what they resolve to.

use crate::live::{LiveConfig, MAX_THREADS};
use crate::track::TrackerConfig;
use crate::{crop, Classifier, Detector, DetectorConfig, Pipeline};
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// File names of the MediaPipe detectors inside the models folder (see models/manifest.tsv).
pub const SHORT_RANGE_FILE: &str = "face_detection_short_range.tflite";
pub const FULL_RANGE_FILE: &str = "face_detection_full_range.tflite";
/// The classifier used when `--model` is not given.
pub const DEFAULT_CLASSIFIER_FILE: &str = "classifier.onnx";

#[derive(Args, Debug, Clone)]
pub struct ModelOptions {
    /// Folder holding the detector files and the default classifier.
    #[arg(long, env = "EDGE_MODELS", default_value = "models", value_name = "DIR")]
    pub models: PathBuf,
    /// REAL/FAKE classifier (.onnx or .tflite) [default: <models>/classifier.onnx].
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Detect and crop faces without classifying them (no classifier is loaded).
    #[arg(long, conflicts_with_all = ["model", "threshold"])]
    pub detect_only: bool,
    /// Face detector: `short` (BlazeFace 128, near faces), `full` (BlazeFace 192, near and far
    /// faces) or the path of a BlazeFace .tflite/.onnx file.
    #[arg(long, default_value = "full", value_name = "short|full|PATH")]
    pub detector: String,
    /// p(FAKE) at or above which a face is FAKE [default: the model's own threshold].
    #[arg(long, value_name = "P")]
    pub threshold: Option<f32>,
    /// Minimum detector score for a face.
    #[arg(long, default_value_t = DetectorConfig::default().min_score, value_name = "S")]
    pub min_score: f32,
    /// Also detect on overlapping tiles of large images, to find small faces in big photos
    /// (several detector passes per image).
    #[arg(long)]
    pub tiles: bool,
    /// Crop margin around each face box, as a fraction of its larger side.
    #[arg(long, default_value_t = crop::DEFAULT_MARGIN, value_name = "F")]
    pub margin: f32,
}

impl ModelOptions {
    pub fn detector_path(&self) -> PathBuf {
        match self.detector.as_str() {
            "short" => self.models.join(SHORT_RANGE_FILE),
            "full" => self.models.join(FULL_RANGE_FILE),
            path => PathBuf::from(path),
        }
    }

    pub fn classifier_path(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(|| self.models.join(DEFAULT_CLASSIFIER_FILE))
    }

    /// Loads both models; any failure names the file and the cause.
    pub fn pipeline(&self) -> Result<Pipeline> {
        let config = DetectorConfig {
            min_score: self.min_score,
            tiling: self.tiles,
            ..DetectorConfig::default()
        };
        // Start-up is mostly tract typing and optimising the two graphs: one on each of two cores.
        let (detector, classifier) = std::thread::scope(|scope| {
            let classifier = (!self.detect_only)
                .then(|| scope.spawn(|| Classifier::load(&self.classifier_path())));
            let detector = Detector::load(&self.detector_path(), config);
            let classifier = classifier.map(|thread| {
                thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("classifier loader panicked")))
            });
            (detector, classifier)
        });
        let detector = detector?;
        let classifier = classifier.transpose()?;
        Ok(Pipeline { detector, classifier, margin: self.margin, threshold: self.threshold })
    }
}

/// File extensions taken from folders (a file named explicitly is always tried).
const IMAGE_EXTENSIONS: &[&str] =
    &["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif", "ppm", "pgm", "pnm"];

/// The inputs named on the command line, with folders expanded (recursively, sorted, images only,
/// hidden entries skipped). A path that cannot be listed becomes an `Err` for that path only.
pub fn expand_inputs(paths: &[PathBuf]) -> Vec<(PathBuf, Result<()>)> {
    let mut out = vec![];
    for path in paths {
        if path.is_dir() {
            walk(path, &mut out);
        } else if path.exists() {
            out.push((path.clone(), Ok(())));
        } else {
            out.push((path.clone(), Err(anyhow::anyhow!("no such file or folder"))));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Result<()>)>) {
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
        if path.is_dir() {
            walk(&path, out);
        } else if is_image_name(&path) {
            out.push((path, Ok(())));
        }
    }
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// Options of the real-time loop (`edge --camera N`, `edge --dir DIR`).
#[derive(Args, Debug, Clone)]
pub struct LiveOptions {
    /// Camera index: V4L2 device /dev/videoN (`edge --list-cameras` lists them).
    #[arg(long, value_name = "N")]
    pub camera: Option<u32>,
    /// Camera frame width (the camera's closest mode is used).
    #[arg(long, default_value_t = 640, value_name = "PX")]
    pub width: u32,
    /// Camera frame height.
    #[arg(long, default_value_t = 480, value_name = "PX")]
    pub height: u32,
    /// Camera pixel format [default: the camera's choice for the size and rate].
    #[arg(long, value_parser = ["mjpeg", "yuyv", "nv12"], value_name = "FORMAT")]
    pub pixel_format: Option<String>,
    /// Show the annotated frames on a Linux framebuffer, e.g. /dev/fb0.
    #[arg(long, value_name = "DEVICE")]
    pub display: Option<PathBuf>,
    /// A folder of images played as camera frames, in name order.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Camera frame rate [default: 30]; for a folder, a camera-like pace (without it, frames
    /// are read as fast as the loop takes them).
    #[arg(long, value_name = "FPS")]
    pub fps: Option<f64>,
    /// Play the folder again from the start when it ends.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Stop after this many processed frames.
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
    /// Run the face detector on every N-th frame and track the faces in between.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub detect_every: u64,
    /// Threads for the loop: 2 runs the face detector on the next frame while the faces of this
    /// one are classified (same results, more frames/s on a board with cores to spare).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Weight of the newest p(FAKE) in each face's running average (1 = no smoothing).
    #[arg(long, default_value_t = TrackerConfig::default().smoothing, value_name = "W")]
    pub smoothing: f32,
    /// How far the smoothed p(FAKE) must cross the threshold to change a face's label.
    #[arg(long, default_value_t = TrackerConfig::default().hysteresis, value_name = "P")]
    pub hysteresis: f32,
    /// Frames without a detection after which a face has left.
    #[arg(long, default_value_t = TrackerConfig::default().forget_after, value_name = "N")]
    pub forget_after: u64,
    /// Write the annotated frame into this folder whenever a face turns FAKE.
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Publish events (and statistics) to this MQTT broker: host or host:port.
    #[arg(long, value_name = "HOST:PORT")]
    pub mqtt: Option<String>,
    /// First level of the MQTT topics: <PREFIX>/<client id>/{events,status,stats}.
    #[arg(long, requires = "mqtt", value_name = "PREFIX")]
    pub mqtt_topic: Option<String>,
    /// MQTT client id, the second topic level [default: the host name].
    #[arg(long, requires = "mqtt", value_name = "ID")]
    pub mqtt_client_id: Option<String>,
    /// File with the broker's user and password (`user:password`, or two lines).
    #[arg(long, requires = "mqtt", value_name = "FILE")]
    pub mqtt_credentials: Option<PathBuf>,
    /// Print statistics every this many seconds (0: only at the end).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub stats_every: f64,
}

impl LiveOptions {
    pub fn config(&self) -> Result<LiveConfig> {
        anyhow::ensure!(self.detect_every >= 1, "--detect-every must be at least 1");
        anyhow::ensure!(
            self.smoothing > 0.0 && self.smoothing <= 1.0,
            "--smoothing must be in (0, 1]"
        );
        anyhow::ensure!(
            (1..=MAX_THREADS).contains(&self.threads),
            "--threads must be 1 or {MAX_THREADS}: the loop runs detection beside classification, \
             no more"
        );
        Ok(LiveConfig {
            detect_every: self.detect_every,
            threads: self.threads,
            tracker: TrackerConfig {
                smoothing: self.smoothing,
                hysteresis: self.hysteresis,
                forget_after: self.forget_after,
                ..TrackerConfig::default()
            },
        })
    }
}

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
