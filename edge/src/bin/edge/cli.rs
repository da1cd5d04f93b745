//! The command line: `edge`'s flags, `edge bench`'s and `edge calibrate`'s, the model and live-loop
//! options they share, and what those resolve to.

use anyhow::Result;
use clap::error::{ContextKind, ContextValue};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use edge::infer::crop;
use edge::infer::model_files::{DEFAULT_CLASSIFIER_FILE, FULL_RANGE_FILE, SHORT_RANGE_FILE};
use edge::input::decode::{DEFAULT_MAX_ALLOC, MAX_SIDE};
use edge::live::track::TrackerConfig;
use edge::live::{LiveConfig, MAX_THREADS};
use edge::range::within;
#[cfg(feature = "serve")]
use edge::serve::Limits;
use edge::{DetectorConfig, Pipeline};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "edge", version, about = "Find faces in images and classify each as REAL or FAKE")]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
#[command(args_override_self = true)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["file", "dir", "camera", "list_cameras"]))]
#[command(
    after_help = "Settings can also come from TOML files: --config FILE (repeatable; keys are \
the long flag names, e.g. detector = \"short\"); flags on the command line override them."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Images or folders of images (searched recursively), each analysed on its own.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub file: Vec<PathBuf>,
    /// Write a copy of each image with its faces drawn into this folder.
    #[arg(long, value_name = "DIR")]
    pub annotate: Option<PathBuf>,
    /// Write each face crop (as the classifier sees it) into this folder: <image>-face<N>.png.
    #[arg(long, value_name = "DIR")]
    pub crops: Option<PathBuf>,
    /// List the cameras and the modes they offer.
    #[arg(long)]
    pub list_cameras: bool,
    /// One JSON object per input (per event, in the real-time loop) on stdout, instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub models: ModelOptions,
    #[command(flatten)]
    pub live: LiveOptions,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Time each stage of the pipeline on one image (medians over repeated runs).
    Bench(BenchOptions),
    /// Set the classifier's threshold on real faces of this site (e.g. frames of the camera's own
    /// scene), so that at most a chosen share of them is called FAKE.
    Calibrate(CalibrateOptions),
    /// Serve the upload page and the HTTP API (POST /api/analyze, GET /api/stats, /metrics,
    /// /healthz) until SIGTERM.
    #[cfg(feature = "serve")]
    Serve(ServeOptions),
}

/// `edge serve`.
#[cfg(feature = "serve")]
#[derive(Args, Debug)]
pub struct ServeOptions {
    /// Address and port to listen on; port 0 picks a free one (printed on stderr). An address
    /// other than loopback needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// A file whose first line is the token (16 characters or more, e.g. `openssl rand -hex
    /// 16`): programs send it as `Authorization: Bearer`, people type it on /login.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Analyses running at once (each takes a core).
    #[arg(long, default_value_t = Limits::default().workers, value_name = "N",
          value_parser = within(1usize, 64))]
    pub workers: usize,
    /// Uploads that may wait for a worker; the next gets 503 with Retry-After.
    #[arg(long, default_value_t = Limits::default().queue, value_name = "N",
          value_parser = within(0usize, 1000))]
    pub queue: usize,
    /// Largest upload, in MB.
    #[arg(long, default_value_t = 20, value_name = "MB", value_parser = within(1usize, 1024))]
    pub max_upload_mb: usize,
    #[command(flatten)]
    pub models: ModelOptions,
}

/// `edge calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateOptions {
    /// Images or folders (searched recursively) of real faces only. Repeat for several.
    #[arg(long, alias = "real", required = true, num_args = 1.., value_name = "PATH")]
    pub dir: Vec<PathBuf>,
    /// The largest share of these real faces the model may call FAKE (e.g. 0.01).
    #[arg(long, value_name = "RATE")]
    pub max_false_alarm: f64,
    /// Write the calibrated model here [default: in place, the original kept as
    /// <name>.bak.<ext>].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Use every face of an image [default: only the largest, one per image].
    #[arg(long)]
    pub all_faces: bool,
    #[command(flatten)]
    pub models: ModelOptions,
}

/// `edge bench`.
#[derive(Args, Debug)]
pub struct BenchOptions {
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    #[arg(long, default_value_t = 50, value_parser = within(1usize, 100_000))]
    pub runs: usize,
    /// The report as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
    /// Time the models alone (detector on the letterboxed image, classifier on the first
    /// face's crop), without pre- or post-processing.
    #[arg(long, conflicts_with = "profile")]
    pub model_only: bool,
    /// With --model-only: write each model's input and outputs into this folder as raw
    /// little-endian f32 (to check other runtimes against tract).
    #[arg(long, requires = "model_only", value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Time every node of each model (tract's per-node evaluation hook) and print the
    /// slowest nodes and the time per op type.
    #[arg(long)]
    pub profile: bool,
    /// With --profile: how many of the slowest nodes to list.
    #[arg(long, default_value_t = 15, value_name = "N", value_parser = within(1usize, 10_000))]
    pub top: usize,
    #[command(flatten)]
    pub models: ModelOptions,
}

/// The command line with the settings of its `--config` files spliced in. A bad value is one
/// line, naming the configuration file when it came from one; help and version print as usual.
pub fn parse() -> Result<Cli> {
    let (args, origins) =
        super::config_file::expand(std::env::args_os().collect(), &Cli::command())?;
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
            let flag = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => {
                    arg.trim_start_matches('-').split([' ', '=']).next().map(str::to_string)
                }
                _ => None,
            };
            match flag.and_then(|f| origins.get(&f)) {
                Some(file) => anyhow::bail!("config {}: {message}", file.display()),
                None => anyhow::bail!(message),
            }
        }
    };
    Ok(Cli::from_arg_matches(&matches)?)
}

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
    #[arg(long, value_name = "P", value_parser = within(0.0f32, 1.0))]
    pub threshold: Option<f32>,
    /// Minimum detector score for a face.
    #[arg(long, default_value_t = DetectorConfig::default().min_score, value_name = "S",
          value_parser = within(0.0f32, 1.0))]
    pub min_score: f32,
    /// Also detect on overlapping tiles of large images, to find small faces in big photos
    /// (several detector passes per image).
    #[arg(long)]
    pub tiles: bool,
    /// Crop margin around each face box, as a fraction of its larger side.
    #[arg(long, default_value_t = crop::DEFAULT_MARGIN, value_name = "F",
          value_parser = within(0.0f32, crop::MAX_MARGIN))]
    pub margin: f32,
    /// Largest memory one image may take to decode, in MiB, checked from its header before
    /// any pixel is read; a larger image is refused. Lower it on a small board
    /// (boards/pi-zero-2w.toml).
    #[arg(long, default_value_t = DEFAULT_MAX_ALLOC >> 20, value_name = "MIB",
          value_parser = within(16u64, 4096))]
    pub max_image_mb: u64,
}

impl Cli {
    /// The model options of the chosen command.
    pub fn model_options(&self) -> &ModelOptions {
        match &self.command {
            Some(Command::Bench(options)) => &options.models,
            Some(Command::Calibrate(options)) => &options.models,
            #[cfg(feature = "serve")]
            Some(Command::Serve(options)) => &options.models,
            None => &self.models,
        }
    }
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

    /// Loads both models (the detector alone with `--detect-only`).
    pub fn pipeline(&self) -> Result<Pipeline> {
        let config = DetectorConfig {
            min_score: self.min_score,
            tiling: self.tiles,
            ..DetectorConfig::default()
        };
        let classifier = (!self.detect_only).then(|| self.classifier_path());
        Pipeline::load(
            &self.detector_path(),
            config,
            classifier.as_deref(),
            self.margin,
            self.threshold,
        )
    }
}

/// Options of the real-time loop (`edge --camera N`, `edge --dir DIR`).
#[derive(Args, Debug, Clone)]
pub struct LiveOptions {
    /// Camera index: V4L2 device /dev/videoN (`edge --list-cameras` lists them).
    #[arg(long, value_name = "N")]
    pub camera: Option<u32>,
    /// Camera frame width (the camera's closest mode is used).
    #[arg(long, conflicts_with = "file", default_value_t = 640, value_name = "PX",
          value_parser = within(16u32, MAX_SIDE))]
    pub width: u32,
    /// Camera frame height.
    #[arg(long, conflicts_with = "file", default_value_t = 480, value_name = "PX",
          value_parser = within(16u32, MAX_SIDE))]
    pub height: u32,
    /// Camera pixel format [default: the camera's choice for the size and rate].
    #[arg(long, conflicts_with = "file", value_parser = ["mjpeg", "yuyv", "nv12"],
          value_name = "FORMAT")]
    pub pixel_format: Option<String>,
    /// Show the annotated frames on a Linux framebuffer, e.g. /dev/fb0.
    #[arg(long, conflicts_with = "file", value_name = "DEVICE")]
    pub display: Option<PathBuf>,
    /// A folder of images played as camera frames, in name order.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Camera frame rate [default: 30]; for a folder, a camera-like pace (without it, frames
    /// are read as fast as the loop takes them).
    #[arg(long, conflicts_with = "file", value_name = "FPS", value_parser = within(0.01, 1000.0))]
    pub fps: Option<f64>,
    /// Play the folder again from the start when it ends.
    #[arg(long = "loop", conflicts_with = "file")]
    pub looping: bool,
    /// Stop after this many processed frames.
    #[arg(long, conflicts_with = "file", value_name = "N", value_parser = within(1u64, u64::MAX))]
    pub max_frames: Option<u64>,
    /// Run the face detector on every N-th frame and track the faces in between.
    #[arg(long, conflicts_with = "file", default_value_t = 1, value_name = "N",
          value_parser = within(1u64, 1000))]
    pub detect_every: u64,
    /// Threads for the loop: 2 runs the face detector on the next frame while the faces of this
    /// one are classified (same results, more frames/s on a board with cores to spare).
    #[arg(long, conflicts_with = "file", default_value_t = 1, value_name = "N",
          value_parser = within(1usize, MAX_THREADS))]
    pub threads: usize,
    /// Weight of the newest p(FAKE) in each face's running average (1 = no smoothing).
    #[arg(long, conflicts_with = "file", default_value_t = TrackerConfig::default().smoothing,
          value_name = "W", value_parser = within(0.01f32, 1.0))]
    pub smoothing: f32,
    /// How far the smoothed p(FAKE) must cross the threshold to change a face's label.
    #[arg(long, conflicts_with = "file", default_value_t = TrackerConfig::default().hysteresis,
          value_name = "P", value_parser = within(0.0f32, 0.5))]
    pub hysteresis: f32,
    /// Frames without a detection after which a face has left.
    #[arg(long, conflicts_with = "file", default_value_t = TrackerConfig::default().forget_after,
          value_name = "N", value_parser = within(0u64, 100_000))]
    pub forget_after: u64,
    /// Write the annotated frame into this folder whenever a face turns FAKE.
    #[arg(long, conflicts_with = "file", value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Publish events (and statistics) to this MQTT broker: host or host:port.
    #[arg(long, conflicts_with = "file", value_name = "HOST:PORT")]
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
    #[arg(long, conflicts_with = "file", default_value_t = 10.0, value_name = "SECONDS",
          value_parser = within(0.0, 86_400.0))]
    pub stats_every: f64,
}

impl LiveOptions {
    pub fn config(&self) -> Result<LiveConfig> {
        Ok(LiveConfig {
            detect_every: self.detect_every,
            threads: self.threads,
            tracker: TrackerConfig {
                smoothing: self.smoothing,
                hysteresis: self.hysteresis,
                forget_after: self.forget_after,
                ..TrackerConfig::default()
            },
            stats_every: (self.stats_every > 0.0)
                .then(|| Duration::from_secs_f64(self.stats_every)),
            max_frames: self.max_frames,
        })
    }
}
