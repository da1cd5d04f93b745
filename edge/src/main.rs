//! `edge`: find the faces in images, or in the frames of a camera or a folder, and classify each
//! as REAL or FAKE.

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use edge::cli::{expand_inputs, one_line, LiveOptions, ModelOptions};
use edge::events::{EventSink, JsonLines, TextLines};
use edge::live::{Live, Outputs};
use edge::source::{Backoff, FolderSource, Newest, Opener, Reconnecting};
use edge::{annotate, ImageReport};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Images or folders of images (searched recursively), each analysed on its own.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    file: Vec<PathBuf>,
    /// Write a copy of each image with its faces drawn into this folder.
    #[arg(long, value_name = "DIR")]
    annotate: Option<PathBuf>,
    /// Write each face crop (as the classifier sees it) into this folder: <image>-face<N>.png.
    #[arg(long, value_name = "DIR")]
    crops: Option<PathBuf>,
    /// List the cameras and the modes they offer.
    #[arg(long)]
    list_cameras: bool,
    /// One JSON object per input (per event, in the real-time loop) on stdout, instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    models: ModelOptions,
    #[command(flatten)]
    live: LiveOptions,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Time each stage of the pipeline on one image (medians over repeated runs).
    Bench {
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// The report as JSON instead of a Markdown table.
        #[arg(long)]
        json: bool,
        /// Time the models alone (detector on the letterboxed image, classifier on the first
        /// face's crop), without pre- or post-processing.
        #[arg(long, conflicts_with = "profile")]
        model_only: bool,
        /// With --model-only: write each model's input and outputs into this folder as raw
        /// little-endian f32 (to check other runtimes against tract).
        #[arg(long, requires = "model_only", value_name = "DIR")]
        dump: Option<PathBuf>,
        /// Time every node of each model (tract's per-node evaluation hook) and print the
        /// slowest nodes and the time per op type.
        #[arg(long)]
        profile: bool,
        /// With --profile: how many of the slowest nodes to list.
        #[arg(long, default_value_t = 15, value_name = "N")]
        top: usize,
        #[command(flatten)]
        models: ModelOptions,
    },
}

/// What `edge bench` measures.
enum BenchMode {
    Stages,
    ModelOnly(Option<PathBuf>),
    Profile(usize),
}

/// glibc hands every freed block above its mmap threshold (128 KiB at first) back to the kernel,
/// and tract's graph optimisation at load allocates, copies and frees weight tensors over and
/// over: each new block is fresh pages, faulted in one at a time (perf: 15 % of a one-photo
/// `edge --file` in page faults). Blocks up to 16 MiB (the most glibc accepts on 32-bit ARM) now
/// come from the heap, whose top is kept, so freed memory is reused. One photo, start to exit,
/// two sets of 15 interleaved runs: 0.181 and 0.168 s against 0.195 and 0.194 s (median), peak RSS
/// 66 MiB either way; model runs unchanged.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets the allocator's parameters, here before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("edge: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Bench {
            ref file,
            runs,
            json,
            model_only,
            ref dump,
            profile,
            top,
            ref models,
        }) => {
            let mode = match (model_only, profile) {
                (true, _) => BenchMode::ModelOnly(dump.clone()),
                (_, true) => BenchMode::Profile(top),
                _ => BenchMode::Stages,
            };
            bench(models, file, runs, json, mode)
        }
        None if cli.list_cameras => list_cameras(),
        None if cli.live.dir.is_some() || cli.live.camera.is_some() => live(&cli),
        None => run(&cli),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The command line with the settings of its `--config` files spliced in.
fn parse() -> Result<Cli> {
    let args = edge::config::expand(std::env::args_os().collect(), &Cli::command())?;
    let matches = Cli::command().try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    Ok(Cli::from_arg_matches(&matches)?)
}

/// The real-time loop over a camera or a folder until the folder ends or a signal stops it.
/// Start-up failures (models, source, display) are errors; a lost source is reopened with
/// back-off. Under systemd: READY once running, the watchdog fed from the loop, STATUS with the
/// statistics.
fn live(cli: &Cli) -> Result<ExitCode> {
    let stop = edge::service::stop_on_signals()?;
    let notifier = edge::service::Notifier::from_env()?;
    let options = &cli.live;
    let config = options.config()?;
    let pipeline = cli.models.pipeline()?;
    let mut opener = opener(options, &stop)?;
    let first = opener()?;
    eprintln!("edge: reading {}", first.describe());
    let mut source = Reconnecting::new(first, opener, Backoff::default(), stop.clone());
    let mut display = match &options.display {
        Some(path) => Some(open_display(path)?),
        None => None,
    };
    if let Some(dir) = &options.snapshots {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create snapshot folder {}", dir.display()))?;
    }
    let sink: Box<dyn EventSink> = if cli.json {
        Box::new(JsonLines(std::io::stdout()))
    } else {
        Box::new(TextLines(std::io::stdout()))
    };
    let mqtt = mqtt::start(options)?;
    let mut sinks = vec![sink];
    sinks.extend(mqtt.as_ref().map(mqtt::sink));
    let watchdog = || {
        if let Some(Err(e)) = notifier.as_ref().map(|n| n.watchdog()) {
            eprintln!("edge: {e:#}");
        }
    };
    let mut outputs = Outputs {
        sinks,
        snapshots: options.snapshots.clone(),
        on_frame: Some(Box::new(|frame, result| {
            watchdog();
            match display.as_mut() {
                Some(display) => display.show(&result.annotated(&frame.image)),
                None => Ok(()),
            }
        })),
        on_idle: Some(Box::new(watchdog)),
        on_stats: Some(Box::new(|report| {
            eprintln!("edge: {report}");
            if let Some(publisher) = &mqtt {
                mqtt::stats(publisher, report);
            }
            if let Some(Err(e)) = notifier.as_ref().map(|n| n.status(&report.to_string())) {
                eprintln!("edge: {e:#}");
            }
        })),
        stats_every: (options.stats_every > 0.0)
            .then(|| Duration::from_secs_f64(options.stats_every)),
        max_frames: options.max_frames,
    };
    if let Some(Err(e)) = notifier.as_ref().map(|n| n.ready()) {
        eprintln!("edge: {e:#}");
    }
    let mut live = Live::new(pipeline, config);
    let result = edge::live::run(&mut live, &mut source, &stop, &mut outputs);
    drop(outputs);
    if let Some(publisher) = mqtt {
        // The run's statistics too, then the queue delivered within the flush time.
        if let Ok(report) = &result {
            mqtt::stats(&publisher, report);
        }
        mqtt::close(publisher);
    }
    if let Some(Err(e)) = notifier.as_ref().map(|n| n.stopping()) {
        eprintln!("edge: {e:#}");
    }
    eprintln!("edge: done: {}", result?);
    Ok(ExitCode::SUCCESS)
}

/// Opens the frame source the options name, each time it is called (again after a loss). A
/// camera, or a paced folder, is read on its own thread and the loop takes the newest frame; an
/// unpaced folder is read frame by frame, so every frame is processed.
fn opener(options: &LiveOptions, stop: &Arc<AtomicBool>) -> Result<Opener> {
    let stop = stop.clone();
    if let Some(dir) = &options.dir {
        let (dir, looping, fps) = (dir.clone(), options.looping, options.fps);
        return Ok(Box::new(move || {
            let folder = Box::new(FolderSource::open(&dir, looping, fps)?);
            Ok(match fps {
                Some(_) => Box::new(Newest::spawn(folder, stop.clone(), STALL)?),
                None => folder,
            })
        }));
    }
    let Some(index) = options.camera else {
        anyhow::bail!("no frame source: give --camera or --dir")
    };
    camera_opener(options, index, stop)
}

/// Events and statistics to an MQTT broker (`--mqtt`). A malformed address or unreadable
/// credentials fail at start-up; a broker that is down is retried in the background.
#[cfg(feature = "mqtt")]
mod mqtt {
    use anyhow::Result;
    use edge::cli::LiveOptions;
    use edge::events::{Event, EventSink};
    use edge::live::StatsReport;
    use edge::mqtt::{MqttConfig, MqttPublisher};

    pub fn start(options: &LiveOptions) -> Result<Option<MqttPublisher>> {
        let Some(address) = &options.mqtt else { return Ok(None) };
        let mut config = MqttConfig::new(address)?;
        if let Some(prefix) = &options.mqtt_topic {
            config.topic_prefix.clone_from(prefix);
        }
        if let Some(id) = &options.mqtt_client_id {
            config.client_id.clone_from(id);
        }
        config.credentials_file.clone_from(&options.mqtt_credentials);
        let publisher = MqttPublisher::start(config)?;
        eprintln!("edge: publishing events to {}", publisher.events_topic());
        Ok(Some(publisher))
    }

    struct Sink<'a>(&'a MqttPublisher);

    impl EventSink for Sink<'_> {
        fn send(&mut self, event: &Event) -> Result<()> {
            self.0.publish_event(event);
            Ok(())
        }
    }

    pub fn sink(publisher: &MqttPublisher) -> Box<dyn EventSink + '_> {
        Box::new(Sink(publisher))
    }

    pub fn stats(publisher: &MqttPublisher, report: &StatsReport) {
        match serde_json::to_value(report) {
            Ok(value) => publisher.publish_stats(&value),
            Err(e) => eprintln!("edge: mqtt: statistics: {e}"),
        }
    }

    /// Delivers what is queued (up to 2 s), publishes `offline`, and says in one line what never
    /// reached the broker and why.
    pub fn close(publisher: MqttPublisher) {
        let status = publisher.close(std::time::Duration::from_secs(2));
        let lost = status.queued as u64 + status.dropped;
        if lost > 0 {
            let why = status.last_error.map(|e| format!(": {e}")).unwrap_or_default();
            eprintln!("edge: mqtt: {lost} event(s) not delivered{why}");
        }
    }
}

/// Without the mqtt feature `--mqtt` fails at start-up.
#[cfg(not(feature = "mqtt"))]
mod mqtt {
    use anyhow::Result;
    use edge::cli::LiveOptions;
    use edge::events::EventSink;
    use edge::live::StatsReport;

    pub enum Never {}

    pub fn start(options: &LiveOptions) -> Result<Option<Never>> {
        anyhow::ensure!(options.mqtt.is_none(), "this edge was built without the `mqtt` feature");
        Ok(None)
    }

    pub fn sink(never: &Never) -> Box<dyn EventSink + '_> {
        match *never {}
    }

    pub fn stats(never: &Never, _: &StatsReport) {
        match *never {}
    }

    pub fn close(never: Never) {
        match never {}
    }
}

/// A camera that delivers nothing for this long is reopened.
const STALL: Duration = Duration::from_secs(10);

#[cfg(feature = "camera")]
fn camera_opener(options: &LiveOptions, index: u32, stop: Arc<AtomicBool>) -> Result<Opener> {
    use clap::ValueEnum;
    use edge::camera::{CameraConfig, CameraSource, PixelFormat};
    let format = match &options.pixel_format {
        Some(name) => Some(PixelFormat::from_str(name, true).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let fps = options.fps.unwrap_or(30.0).round().clamp(1.0, 1000.0) as u32;
    let config = CameraConfig { index, width: options.width, height: options.height, fps, format };
    Ok(Box::new(move || {
        let camera = Box::new(CameraSource::open(config)?);
        Ok(Box::new(Newest::spawn(camera, stop.clone(), STALL)?)
            as Box<dyn edge::source::FrameSource>)
    }))
}

#[cfg(not(feature = "camera"))]
fn camera_opener(_: &LiveOptions, _: u32, _: Arc<AtomicBool>) -> Result<Opener> {
    anyhow::bail!("this edge was built without the `camera` feature")
}

#[cfg(feature = "camera")]
fn list_cameras() -> Result<ExitCode> {
    let cameras = edge::camera::list_cameras()?;
    if cameras.is_empty() {
        println!("no cameras (no /dev/video* device)");
    }
    for camera in cameras {
        println!("{camera}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "camera"))]
fn list_cameras() -> Result<ExitCode> {
    anyhow::bail!("this edge was built without the `camera` feature")
}

#[cfg(feature = "display")]
fn open_display(path: &Path) -> Result<edge::display::Framebuffer> {
    let display = edge::display::Framebuffer::open(path)?;
    eprintln!("edge: showing frames on {}", display.describe());
    Ok(display)
}

/// Without the display feature nothing can be shown; say so at start-up.
#[cfg(not(feature = "display"))]
fn open_display(_: &Path) -> Result<NoDisplay> {
    anyhow::bail!("this edge was built without the `display` feature")
}

#[cfg(not(feature = "display"))]
enum NoDisplay {}

#[cfg(not(feature = "display"))]
impl NoDisplay {
    fn show(&mut self, _: &image::RgbImage) -> Result<()> {
        match *self {}
    }
}

/// Start-up failures are returned as errors (exit 2); failures of single inputs are reported as
/// they happen and make the exit code 1 once every other input has been processed.
fn run(cli: &Cli) -> Result<ExitCode> {
    let pipeline = cli.models.pipeline()?;
    for dir in [&cli.annotate, &cli.crops].into_iter().flatten() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    let mut names = HashSet::new();
    let mut failed = 0;
    let stdout = std::io::stdout();
    for (path, listed) in expand_inputs(&cli.file) {
        let outcome = listed.and_then(|()| {
            let (report, mut img) = pipeline.analyse_file(&path)?;
            let name = unique_png_name(&path, &mut names);
            if let Some(dir) = &cli.crops {
                for (i, face) in report.faces.iter().enumerate() {
                    let [x0, y0, x1, y1] = face.bbox;
                    let bbox = edge::BBox { x0, y0, x1, y1 };
                    let crop = edge::crop::face(&img, &bbox, pipeline.margin, pipeline.crop_size());
                    let stem = name.strip_suffix(".png").unwrap_or(&name);
                    let out = dir.join(format!("{stem}-face{}.png", i + 1));
                    crop.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
                }
            }
            if let Some(dir) = &cli.annotate {
                annotate::draw(&mut img, &report.faces);
                let out = dir.join(&name);
                img.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
            }
            Ok(report)
        });
        let mut out = stdout.lock();
        match outcome {
            Ok(report) if cli.json => writeln!(out, "{}", serde_json::to_string(&report)?)?,
            Ok(report) => write_text(&mut out, &report)?,
            Err(e) => {
                failed += 1;
                if cli.json {
                    let line = serde_json::json!({"file": path.display().to_string(), "error": one_line(&e)});
                    writeln!(out, "{line}")?;
                } else {
                    eprintln!("edge: {}: {}", path.display(), one_line(&e));
                }
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn write_text(out: &mut impl Write, r: &ImageReport) -> Result<()> {
    let t = r.timings_ms;
    let n = r.faces.len();
    let classify = if r.faces.iter().any(|f| f.p_fake.is_some()) {
        format!(", classify {:.1} ms", t.crop + t.classify)
    } else {
        String::new()
    };
    writeln!(
        out,
        "{}: {}×{}, {n} face{} (decode {:.1} ms, detect {:.1} ms{classify})",
        r.file,
        r.width,
        r.height,
        if n == 1 { "" } else { "s" },
        t.decode,
        t.detect,
    )?;
    for (i, f) in r.faces.iter().enumerate() {
        let [x0, y0, x1, y1] = f.bbox;
        let verdict = match (f.label, f.p_fake) {
            (Some(label), Some(p)) => format!("{label} p_fake {p:.3}  "),
            _ => String::new(),
        };
        writeln!(
            out,
            "  face {}: {verdict}box ({x0:.0}, {y0:.0})–({x1:.0}, {y1:.0})  score {:.2}",
            i + 1,
            f.score
        )?;
    }
    Ok(())
}

/// `<stem>.png`, with `-2`, `-3` … when inputs from different folders share a stem.
fn unique_png_name(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name = format!("{stem}.png");
    let mut k = 1;
    while !used.insert(name.clone()) {
        k += 1;
        name = format!("{stem}-{k}.png");
    }
    name
}

fn bench(
    models: &ModelOptions,
    file: &Path,
    runs: usize,
    json: bool,
    mode: BenchMode,
) -> Result<ExitCode> {
    let pipeline = models.pipeline()?;
    match mode {
        BenchMode::Stages => {
            let report = edge::bench::run(&pipeline, file, runs)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.to_markdown());
                println!("\n{}", edge::kernels::describe());
            }
        }
        BenchMode::ModelOnly(dump) => {
            if let Some(dir) = &dump {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create folder {}", dir.display()))?;
            }
            let prepared = edge::bench::prepare(&pipeline, file)?;
            let timings = edge::bench::model_only(&prepared, runs, dump.as_deref())?;
            if json {
                println!("{}", serde_json::to_string(&timings)?);
            } else {
                println!("| model | input | runs | median ms | p90 ms |\n| --- | --- | ---: | ---: | ---: |");
                for t in timings {
                    println!(
                        "| {} | {:?} | {} | {:.3} | {:.3} |",
                        t.model, t.input_shape, t.runs, t.ms.median, t.ms.p90
                    );
                }
                println!("\n{}", edge::kernels::describe());
            }
        }
        BenchMode::Profile(top) => {
            let prepared = edge::bench::prepare(&pipeline, file)?;
            let profiles = prepared
                .iter()
                .map(|p| edge::bench::profile(p, runs))
                .collect::<Result<Vec<_>>>()?;
            if json {
                println!("{}", serde_json::to_string(&profiles)?);
            } else {
                for p in profiles {
                    println!("{}", p.to_markdown(top));
                }
                println!("{}", edge::kernels::describe());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
