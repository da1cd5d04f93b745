//! `cargo bench --bench live`: the real-time loop fed by the folder source, 640×480 frames with one
//! face (the astronaut moving across a grey background), with the default models (full-range
//! BlazeFace + models/classifier.onnx). Prints processed frames/s for detection on every frame and
//! every third frame, with 1 and 2 threads (`--threads`), against the same frames run one by one
//! through the `edge --file` pipeline (decode, detect, classify; no tracking) and against 1 thread,
//! all measured in the same run; and the resident memory after warm-up and at the end of the long
//! run. `LIVE_BENCH_FRAMES` (default 10000) sets the length of the long run. Run `models/fetch`
//! first.

use edge::live::source::FolderSource;
use edge::live::stats::StageMs;
use edge::live::{run, Live, LiveConfig};
use edge::{Classifier, Detector, DetectorConfig, Pipeline};
use image::{imageops, Rgb, RgbImage};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const DISTINCT: usize = 60;

fn pipeline() -> anyhow::Result<Pipeline> {
    let detector = Detector::load(
        &testkit::model("face_detection_full_range.tflite"),
        DetectorConfig::default(),
    )?;
    let classifier = Classifier::load(&testkit::model("classifier.onnx"))?;
    Ok(Pipeline {
        detector,
        classifier: Some(classifier),
        margin: edge::infer::crop::DEFAULT_MARGIN,
        threshold: None,
    })
}

/// Resident set size in MiB, from /proc/self/status.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn write_frames(dir: &Path) -> anyhow::Result<()> {
    let astronaut = edge::input::decode::open(&testkit::photo("astronaut.png"))?;
    let face = imageops::resize(&astronaut, 300, 300, imageops::FilterType::Triangle);
    for i in 0..DISTINCT {
        let mut frame = RgbImage::from_pixel(640, 480, Rgb([90, 90, 90]));
        // Back and forth, 10 px a frame.
        let x = (i as i64 * 10) % 600;
        let x = if x > 300 { 600 - x } else { x };
        imageops::overlay(&mut frame, &face, x + 20, 90);
        frame.save(dir.join(format!("frame{i:03}.png")))?;
    }
    Ok(())
}

/// Frames/s of the loop over `frames` frames; RSS after 100 frames and at the end; the mean
/// milliseconds per stage.
fn live(dir: &Path, config: LiveConfig, frames: u64) -> anyhow::Result<(f64, f64, f64, StageMs)> {
    let mut live = Live::new(pipeline()?, config);
    let mut source = FolderSource::open(dir, true, None)?;
    let stop = AtomicBool::new(false);
    live.config.max_frames = Some(100);
    run(&mut live, &mut source, &stop, &mut [])?;
    let rss_start = rss_mib();
    let t = Instant::now();
    live.config.max_frames = Some(100 + frames);
    let report = run(&mut live, &mut source, &stop, &mut [])?;
    Ok((frames as f64 / t.elapsed().as_secs_f64(), rss_start, rss_mib(), report.ms))
}

/// Frames/s of the `edge --file` pipeline over the same frames, one by one.
fn one_by_one(dir: &Path, frames: u64) -> anyhow::Result<f64> {
    let pipeline = pipeline()?;
    let paths: Vec<_> = (0..DISTINCT).map(|i| dir.join(format!("frame{i:03}.png"))).collect();
    let t = Instant::now();
    for i in 0..frames as usize {
        pipeline.analyse_file(&paths[i % DISTINCT])?;
    }
    Ok(frames as f64 / t.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let long: u64 =
        std::env::var("LIVE_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("edge-live-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    write_frames(&dir)?;
    let short = 300.min(long);
    let config =
        |detect_every, threads| LiveConfig { detect_every, threads, ..LiveConfig::default() };
    let base = one_by_one(&dir, short)?;
    let (every1, _, _, ms) = live(&dir, config(1, 1), short)?;
    let (every1_t2, _, _, _) = live(&dir, config(1, 2), short)?;
    let (every3_t2, _, _, _) = live(&dir, config(3, 2), short)?;
    let (every3, rss_start, rss_end, _) = live(&dir, config(3, 1), long)?;
    println!(
        "| run (640×480, one face) | threads | frames | frames/s | ÷ one by one | ÷ 1 thread |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    println!("| one by one (`edge --file` pipeline) | 1 | {short} | {base:.1} | 1.00 | |");
    let row = |what: &str, threads: usize, frames: u64, fps: f64, one: f64| {
        println!(
            "| {what} | {threads} | {frames} | {fps:.1} | {:.2} | {:.2} |",
            fps / base,
            fps / one
        );
    };
    row("loop, detect every frame", 1, short, every1, every1);
    row("loop, detect every frame", 2, short, every1_t2, every1);
    row("loop, detect every 3rd frame", 1, long, every3, every3);
    row("loop, detect every 3rd frame", 2, short, every3_t2, every3);
    // Two threads overlap detection with crop + classify; with a core to spare, a frame costs the
    // longer of the two instead of their sum.
    let overlapped = ms.detect.max(ms.crop + ms.classify);
    println!(
        "\nms per frame, detect every frame, 1 thread: detect {:.2}, crop {:.2}, classify {:.2}, \
         total {:.2}; with a free core 2 threads could reach {:.2}× (sum ÷ the longer part)",
        ms.detect,
        ms.crop,
        ms.classify,
        ms.frame,
        (ms.detect + ms.crop + ms.classify) / overlapped
    );
    println!(
        "\nRSS over the {long}-frame run (1 thread): {rss_start:.1} MiB after warm-up, {rss_end:.1} MiB at the end"
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
