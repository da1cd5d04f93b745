//! The real-time loop: frames from a [`FrameSource`], faces detected every `detect_every` frames
//! and tracked in between, each track classified every frame and its p(FAKE) smoothed, events
//! when a face appears, changes label or leaves, and running statistics.

use crate::annotate;
use crate::classify::Label;
use crate::crop;
use crate::detect::{Detector, Face};
use crate::events::{Event, EventKind, EventSink};
use crate::pipeline::{FaceReport, Pipeline};
use crate::source::{Frame, FrameSource, SourceError};
use crate::track::{LabelChange, Track, Tracker, TrackerConfig};
use anyhow::{Context, Result};
use image::RgbImage;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Copy, Debug)]
pub struct LiveConfig {
    /// Run the detector on every k-th frame; tracks are carried forward in between.
    pub detect_every: u64,
    pub tracker: TrackerConfig,
    /// 1: each frame detected, tracked and classified in turn. 2: [`run`] detects the next frame
    /// on a thread of its own while this frame's faces are cropped and classified (same results,
    /// one frame later).
    pub threads: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig { detect_every: 1, tracker: TrackerConfig::default(), threads: 1 }
    }
}

/// The most threads the loop has use for: detection beside cropping and classification.
pub const MAX_THREADS: usize = 2;

/// The detector's outcome for one frame, and its milliseconds.
struct Detection {
    faces: Result<Vec<Face>>,
    ms: f64,
}

impl Detection {
    fn run(detector: &Detector, image: &RgbImage) -> Detection {
        let t = Instant::now();
        let faces = detector.detect(image);
        Detection { faces, ms: ms_since(t) }
    }
}

/// One frame's outcome: what happened, and every tracked face as it stands (for drawing).
#[derive(Debug, Default)]
pub struct FrameResult {
    pub events: Vec<Event>,
    /// Track id and face, with the smoothed p(FAKE) and label.
    pub faces: Vec<(u64, FaceReport)>,
    /// Whether the detector ran on this frame.
    pub detected: bool,
}

impl FrameResult {
    /// A copy of `frame` with the tracked faces drawn on it.
    pub fn annotated(&self, frame: &RgbImage) -> RgbImage {
        let mut img = frame.clone();
        let faces: Vec<FaceReport> = self.faces.iter().map(|(_, f)| f.clone()).collect();
        annotate::draw(&mut img, &faces);
        img
    }
}

/// The loop's state across frames.
pub struct Live {
    pub pipeline: Pipeline,
    pub config: LiveConfig,
    tracker: Tracker,
    frames_seen: u64,
    pub total: Stats,
    pub window: Stats,
}

impl Live {
    pub fn new(pipeline: Pipeline, config: LiveConfig) -> Self {
        Live {
            pipeline,
            tracker: Tracker::new(config.tracker),
            config: LiveConfig { detect_every: config.detect_every.max(1), ..config },
            frames_seen: 0,
            total: Stats::default(),
            window: Stats::default(),
        }
    }

    /// Detects (every k-th frame) or predicts, classifies every tracked face, and returns the
    /// events and faces of this frame.
    pub fn process(&mut self, frame: &Frame) -> Result<FrameResult> {
        let started = Instant::now();
        let detection =
            self.schedule().then(|| Detection::run(&self.pipeline.detector, &frame.image));
        self.advance(frame, detection, started)
    }

    /// Counts the next frame and says whether the detector runs on it.
    fn schedule(&mut self) -> bool {
        let detect = self.frames_seen.is_multiple_of(self.config.detect_every);
        self.frames_seen += 1;
        detect
    }

    /// Tracks with the frame's detection (or predicts without one), classifies every tracked
    /// face, and returns the events and faces of this frame.
    fn advance(
        &mut self,
        frame: &Frame,
        detection: Option<Detection>,
        started: Instant,
    ) -> Result<FrameResult> {
        let mut ms = StageMs::default();
        let detect = detection.is_some();
        let mut result = FrameResult { detected: detect, ..FrameResult::default() };
        let time = rfc3339_millis(SystemTime::now());
        if let Some(detection) = detection {
            let faces = detection.faces?;
            ms.detect = detection.ms;
            for gone in self.tracker.update(faces, frame.seq) {
                result.events.push(event(EventKind::Left, &gone, frame, &time, None));
            }
        } else {
            self.tracker.predict(frame.seq);
        }
        let threshold = self.pipeline.threshold();
        for index in 0..self.tracker.tracks().len() {
            let track = &self.tracker.tracks()[index];
            let change = match (&self.pipeline.classifier, threshold) {
                (Some(classifier), Some(threshold)) => {
                    let t = Instant::now();
                    let size = classifier.input_size();
                    let face =
                        crop::face(&frame.image, &track.face.bbox, self.pipeline.margin, size);
                    ms.crop += ms_since(t);
                    let t = Instant::now();
                    let p = classifier.p_fake(&face)?;
                    ms.classify += ms_since(t);
                    self.tracker.observe(index, p, threshold)
                }
                // Without a classifier a track is announced when first seen.
                _ => (track.detected_at() == frame.seq && track.hits() == 1)
                    .then_some(LabelChange::First),
            };
            let track = &self.tracker.tracks()[index];
            match change {
                Some(LabelChange::First) => {
                    result.events.push(event(EventKind::Appeared, track, frame, &time, None))
                }
                Some(LabelChange::From(previous)) => result.events.push(event(
                    EventKind::LabelChanged,
                    track,
                    frame,
                    &time,
                    Some(previous),
                )),
                None => {}
            }
            result.faces.push((track.id, report(track)));
        }
        ms.frame = ms_since(started);
        for stats in [&mut self.total, &mut self.window] {
            stats.record(frame.seq, detect, result.faces.len(), &ms);
        }
        Ok(result)
    }

    /// `left` events for every face still tracked (the source has ended or the loop stops),
    /// dated at the last frame, `seq` from `origin`.
    pub fn finish(&mut self, origin: &str, seq: u64) -> Vec<Event> {
        let time = rfc3339_millis(SystemTime::now());
        let frame = Frame {
            image: RgbImage::new(0, 0),
            seq,
            captured: Instant::now(),
            origin: origin.to_string(),
        };
        self.tracker
            .clear()
            .iter()
            .map(|t| event(EventKind::Left, t, &frame, &time, None))
            .collect()
    }

    /// Counts a frame the source could not deliver (a corrupt file, a broken camera frame).
    pub fn bad_frame(&mut self) {
        self.total.bad_frames += 1;
        self.window.bad_frames += 1;
    }
}

fn report(t: &Track) -> FaceReport {
    let b = t.face.bbox;
    FaceReport {
        bbox: [b.x0, b.y0, b.x1, b.y1],
        score: t.face.score,
        keypoints: t.face.keypoints.to_vec(),
        p_fake: t.p_fake,
        label: t.label,
    }
}

fn event(kind: EventKind, t: &Track, frame: &Frame, time: &str, previous: Option<Label>) -> Event {
    let b = t.face.bbox;
    let px = |v: f32| (v * 10.0).round() / 10.0;
    Event {
        event: kind,
        time: time.to_string(),
        source: frame.origin.clone(),
        frame: frame.seq,
        track: t.id,
        bbox: [px(b.x0), px(b.y0), px(b.x1), px(b.y1)],
        p_fake: t.p_fake.map(|p| (p * 1e4).round() / 1e4),
        label: t.label,
        previous,
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Milliseconds per stage for one frame.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StageMs {
    pub detect: f64,
    pub crop: f64,
    pub classify: f64,
    /// The whole of [`Live::process`]; with two threads, from waiting for the frame's
    /// detection to its last classification (the time the loop spends per frame).
    pub frame: f64,
}

/// Counters over an interval of the loop.
#[derive(Clone, Debug)]
pub struct Stats {
    pub since: Instant,
    pub processed: u64,
    pub detect_passes: u64,
    pub faces: u64,
    pub bad_frames: u64,
    first_seq: Option<u64>,
    last_seq: u64,
    sum: StageMs,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            since: Instant::now(),
            processed: 0,
            detect_passes: 0,
            faces: 0,
            bad_frames: 0,
            first_seq: None,
            last_seq: 0,
            sum: StageMs::default(),
        }
    }
}

/// Statistics as printed and published.
#[derive(Clone, Debug, Serialize)]
pub struct StatsReport {
    pub seconds: f64,
    /// Frames the source delivered over the interval (from sequence numbers).
    pub captured: u64,
    pub processed: u64,
    /// Captured frames the loop never processed (it kept the newest instead).
    pub skipped: u64,
    pub bad_frames: u64,
    pub capture_fps: f64,
    pub processed_fps: f64,
    pub detect_passes: u64,
    /// Mean milliseconds per processed frame, per stage.
    pub ms: StageMs,
}

impl Stats {
    fn record(&mut self, seq: u64, detected: bool, faces: usize, ms: &StageMs) {
        if self.first_seq.is_none() {
            self.first_seq = Some(seq);
        }
        self.last_seq = self.last_seq.max(seq);
        self.processed += 1;
        self.detect_passes += u64::from(detected);
        self.faces += faces as u64;
        self.sum.detect += ms.detect;
        self.sum.crop += ms.crop;
        self.sum.classify += ms.classify;
        self.sum.frame += ms.frame;
    }

    pub fn report(&self) -> StatsReport {
        let seconds = self.since.elapsed().as_secs_f64();
        let captured = self.first_seq.map_or(0, |f| self.last_seq - f + 1);
        let n = self.processed.max(1) as f64;
        let per = |v: f64| (v / n * 1000.0).round() / 1000.0;
        let rate =
            |k: u64| if seconds > 0.0 { (k as f64 / seconds * 10.0).round() / 10.0 } else { 0.0 };
        StatsReport {
            seconds: (seconds * 10.0).round() / 10.0,
            captured,
            processed: self.processed,
            skipped: captured.saturating_sub(self.processed),
            bad_frames: self.bad_frames,
            capture_fps: rate(captured),
            processed_fps: rate(self.processed),
            detect_passes: self.detect_passes,
            ms: StageMs {
                detect: per(self.sum.detect),
                crop: per(self.sum.crop),
                classify: per(self.sum.classify),
                frame: per(self.sum.frame),
            },
        }
    }
}

impl std::fmt::Display for StatsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} s: captured {} ({:.1} fps), processed {} ({:.1} fps), skipped {}, bad {}; \
             ms/frame detect {:.2} crop {:.2} classify {:.2} total {:.2}",
            self.seconds,
            self.captured,
            self.capture_fps,
            self.processed,
            self.processed_fps,
            self.skipped,
            self.bad_frames,
            self.ms.detect,
            self.ms.crop,
            self.ms.classify,
            self.ms.frame
        )
    }
}

/// Called with every processed frame (display, watchdog).
pub type FrameHook<'a> = Box<dyn FnMut(&Frame, &FrameResult) -> Result<()> + 'a>;
/// Called with the statistics of an interval.
pub type StatsHook<'a> = Box<dyn FnMut(&StatsReport) + 'a>;

/// Where the loop's results go besides the returned statistics.
#[derive(Default)]
pub struct Outputs<'a> {
    pub sinks: Vec<Box<dyn EventSink + 'a>>,
    /// Annotated frames written here when a face turns FAKE.
    pub snapshots: Option<PathBuf>,
    /// Called with every processed frame (display, watchdog).
    pub on_frame: Option<FrameHook<'a>>,
    /// Called while the source has no frame (at least every [`crate::source::IDLE`]).
    pub on_idle: Option<Box<dyn FnMut() + 'a>>,
    /// Called with the statistics of the last interval every `stats_every`.
    pub on_stats: Option<StatsHook<'a>>,
    pub stats_every: Option<Duration>,
    /// Stop after this many processed frames.
    pub max_frames: Option<u64>,
}

/// Runs the loop until the source ends, `stop` is set, or `max_frames` are processed; returns
/// the statistics of the whole run. Bad frames and failures of a frame are logged and skipped;
/// a source lost for good (not wrapped in [`crate::source::Reconnecting`]) ends the run with an
/// error; a failing output is logged and the loop goes on. With `threads` 2 the detector runs on
/// a thread of its own, one frame ahead.
pub fn run(
    live: &mut Live,
    source: &mut dyn FrameSource,
    stop: &AtomicBool,
    outputs: &mut Outputs,
) -> Result<StatsReport> {
    if live.config.threads < 2 {
        return run_with(live, source, stop, outputs, None);
    }
    let detector = live.pipeline.detector.clone();
    let (frames, to_detect) = mpsc::channel::<Arc<Frame>>();
    let (detected, detections) = mpsc::channel();
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("detect".into())
            .spawn_scoped(scope, move || {
                for frame in to_detect {
                    if detected.send(Detection::run(&detector, &frame.image)).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the detection thread")?;
        // Dropping `frames` on return ends the thread.
        run_with(live, source, stop, outputs, Some(DetectThread { frames, detections }))
    })
}

/// The ends of the detection thread's channels.
struct DetectThread {
    frames: Sender<Arc<Frame>>,
    detections: Receiver<Detection>,
}

/// A frame taken from the source, waiting for its detection (or for its turn, without one).
struct Pending {
    frame: Arc<Frame>,
    detect: bool,
}

fn run_with(
    live: &mut Live,
    source: &mut dyn FrameSource,
    stop: &AtomicBool,
    outputs: &mut Outputs,
    detect_thread: Option<DetectThread>,
) -> Result<StatsReport> {
    let name = source.describe();
    let (mut last_seq, mut last_origin) = (0, name.clone());
    let mut lost = None;
    // With a detection thread, the frame before the newest one: it is classified while the
    // newest is detected.
    let mut pending: Option<Pending> = None;
    let in_flight = |pending: &Option<Pending>| u64::from(pending.is_some());
    while !stop.load(Ordering::Relaxed)
        && outputs.max_frames.is_none_or(|m| live.total.processed + in_flight(&pending) < m)
    {
        let frame = match source.next_frame() {
            Ok(Some(frame)) => Arc::new(frame),
            Ok(None) => break,
            Err(SourceError::Frame(e)) => {
                live.bad_frame();
                eprintln!("edge: {name}: {e:#}");
                continue;
            }
            Err(SourceError::Lost(e)) => {
                lost = Some(e);
                break;
            }
            Err(SourceError::Idle) => {
                // Nothing new to overlap with: finish the waiting frame now.
                if let Some(p) = pending.take() {
                    complete(live, outputs, detect_thread.as_ref(), p);
                }
                if let Some(on_idle) = &mut outputs.on_idle {
                    on_idle();
                }
                continue;
            }
        };
        last_seq = frame.seq;
        last_origin.clone_from(&frame.origin);
        let detect = live.schedule();
        let next = Pending { frame, detect };
        match &detect_thread {
            Some(thread) => {
                if detect && thread.frames.send(next.frame.clone()).is_err() {
                    eprintln!("edge: the detection thread has stopped");
                }
                if let Some(previous) = pending.replace(next) {
                    complete(live, outputs, detect_thread.as_ref(), previous);
                }
            }
            None => complete(live, outputs, None, next),
        }
    }
    if let Some(p) = pending.take() {
        complete(live, outputs, detect_thread.as_ref(), p);
    }
    let result =
        FrameResult { events: live.finish(&last_origin, last_seq), ..FrameResult::default() };
    for event in &result.events {
        send(outputs, event);
    }
    match lost {
        Some(e) => Err(e.context(format!("{name} lost"))),
        None => Ok(live.total.report()),
    }
}

/// Detects (here, or takes the detection thread's result), tracks and classifies one frame,
/// delivers its outcome, and reports the statistics when their interval is over.
fn complete(live: &mut Live, outputs: &mut Outputs, thread: Option<&DetectThread>, p: Pending) {
    let started = Instant::now();
    let detection = p.detect.then(|| match thread {
        Some(thread) => thread.detections.recv().unwrap_or_else(|_| Detection {
            faces: Err(anyhow::anyhow!("the detection thread has stopped")),
            ms: 0.0,
        }),
        None => Detection::run(&live.pipeline.detector, &p.frame.image),
    });
    match live.advance(&p.frame, detection, started) {
        Ok(result) => deliver(outputs, &p.frame, &result),
        Err(e) => {
            live.bad_frame();
            eprintln!("edge: {}: {e:#}", p.frame.origin);
        }
    }
    if let Some(every) = outputs.stats_every {
        if live.window.since.elapsed() >= every {
            let report = live.window.report();
            if let Some(on_stats) = &mut outputs.on_stats {
                on_stats(&report);
            }
            live.window = Stats::default();
        }
    }
}

fn send(outputs: &mut Outputs, event: &Event) {
    for sink in &mut outputs.sinks {
        if let Err(e) = sink.send(event) {
            eprintln!("edge: cannot send event: {e:#}");
        }
    }
}

fn deliver(outputs: &mut Outputs, frame: &Frame, result: &FrameResult) {
    for event in &result.events {
        send(outputs, event);
        let turned_fake = event.label == Some(Label::Fake)
            && matches!(event.event, EventKind::Appeared | EventKind::LabelChanged);
        if let (true, Some(dir)) = (turned_fake, &outputs.snapshots) {
            if let Err(e) = snapshot(dir, frame, result, event) {
                eprintln!("edge: snapshot: {e:#}");
            }
        }
    }
    if let Some(on_frame) = &mut outputs.on_frame {
        if let Err(e) = on_frame(frame, result) {
            eprintln!("edge: {e:#}");
        }
    }
}

/// Writes the annotated frame as `<time>-track<id>.jpg` into `dir`.
fn snapshot(
    dir: &std::path::Path,
    frame: &Frame,
    result: &FrameResult,
    event: &Event,
) -> Result<()> {
    let stamp: String = event.time.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let path = dir.join(format!("{stamp}-track{}.jpg", event.track));
    result
        .annotated(&frame.image)
        .save(&path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `2026-11-25T04:05:06.789Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339_millis(at(0, 0)), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1795579506` → Wed Nov 25 04:05:06 UTC 2026
        assert_eq!(rfc3339_millis(at(1_795_579_506, 789)), "2026-11-25T04:05:06.789Z");
        // 2024-02-29 (leap day) 23:59:59
        assert_eq!(rfc3339_millis(at(1_709_251_199, 1)), "2024-02-29T23:59:59.001Z");
    }
}
