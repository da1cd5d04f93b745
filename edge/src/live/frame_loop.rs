//! The real-time loop: frames from a [`FrameSource`], faces detected every `detect_every` frames
//! and tracked in between, each track classified every frame and its p(FAKE) smoothed, events
//! when a face appears, changes label or leaves, and running statistics, all handed to the
//! [`Sink`]s.

use super::events::{rfc3339_millis, Event, EventKind, FrameResult};
use super::sink::Sink;
use super::source::{Frame, FrameSource, SourceError};
use super::stats::{StageMs, Stats, StatsReport};
use super::track::{LabelChange, Track, Tracker, TrackerConfig};
use crate::infer::classify::Label;
use crate::infer::crop;
use crate::infer::detect::{Detector, Face};
use crate::infer::pipeline::{FaceReport, Pipeline};
use anyhow::{Context, Result};
use image::RgbImage;
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
    /// Hand the statistics of the last interval to the sinks this often.
    pub stats_every: Option<Duration>,
    /// Stop after this many processed frames.
    pub max_frames: Option<u64>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            detect_every: 1,
            tracker: TrackerConfig::default(),
            threads: 1,
            stats_every: None,
            max_frames: None,
        }
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

/// The outputs of one run.
pub type Sinks<'a> = [Box<dyn Sink + 'a>];

/// Runs the loop until the source ends, `stop` is set, or `max_frames` are processed; returns
/// the statistics of the whole run, which every sink also gets in [`Sink::finish`]. Bad frames
/// and failures of a frame are logged and skipped; a source lost for good (not wrapped in
/// [`super::source::Reconnecting`]) ends the run with an error; a failing sink is logged and the
/// loop goes on. With `threads` 2 the detector runs on a thread of its own, one frame ahead.
pub fn run(
    live: &mut Live,
    source: &mut dyn FrameSource,
    stop: &AtomicBool,
    sinks: &mut Sinks,
) -> Result<StatsReport> {
    let result = if live.config.threads < 2 {
        run_with(live, source, stop, sinks, None)
    } else {
        run_threaded(live, source, stop, sinks)
    };
    let report = live.total.report();
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.finish(&report) {
            eprintln!("edge: {}: {e:#}", sink.name());
        }
    }
    result.map(|()| report)
}

fn run_threaded(
    live: &mut Live,
    source: &mut dyn FrameSource,
    stop: &AtomicBool,
    sinks: &mut Sinks,
) -> Result<()> {
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
        run_with(live, source, stop, sinks, Some(DetectThread { frames, detections }))
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
    sinks: &mut Sinks,
    detect_thread: Option<DetectThread>,
) -> Result<()> {
    let name = source.describe();
    let (mut last_seq, mut last_origin) = (0, name.clone());
    let mut lost = None;
    // With a detection thread, the frame before the newest one: it is classified while the
    // newest is detected.
    let mut pending: Option<Pending> = None;
    let in_flight = |pending: &Option<Pending>| u64::from(pending.is_some());
    let max_frames = live.config.max_frames;
    while !stop.load(Ordering::Relaxed)
        && max_frames.is_none_or(|m| live.total.processed + in_flight(&pending) < m)
    {
        let frame = match source.next_frame() {
            Ok(Some(frame)) => Arc::new(frame),
            Ok(None) => break,
            Err(SourceError::Frame(e)) => {
                live.bad_frame();
                eprintln!("edge: {name}: {}", crate::error::one_line(&e));
                continue;
            }
            Err(SourceError::Lost(e)) => {
                lost = Some(e);
                break;
            }
            Err(SourceError::Idle) => {
                // Nothing new to overlap with: finish the waiting frame now.
                if let Some(p) = pending.take() {
                    complete(live, sinks, detect_thread.as_ref(), p);
                }
                each(sinks, |sink| sink.idle());
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
                    complete(live, sinks, detect_thread.as_ref(), previous);
                }
            }
            None => complete(live, sinks, None, next),
        }
    }
    if let Some(p) = pending.take() {
        complete(live, sinks, detect_thread.as_ref(), p);
    }
    for event in live.finish(&last_origin, last_seq) {
        each(sinks, |sink| sink.event(&event));
    }
    match lost {
        Some(e) => Err(e.context(format!("{name} lost"))),
        None => Ok(()),
    }
}

/// Detects (here, or takes the detection thread's result), tracks and classifies one frame,
/// delivers its outcome, and reports the statistics when their interval is over.
fn complete(live: &mut Live, sinks: &mut Sinks, thread: Option<&DetectThread>, p: Pending) {
    let started = Instant::now();
    let detection = p.detect.then(|| match thread {
        Some(thread) => thread.detections.recv().unwrap_or_else(|_| Detection {
            faces: Err(anyhow::anyhow!("the detection thread has stopped")),
            ms: 0.0,
        }),
        None => Detection::run(&live.pipeline.detector, &p.frame.image),
    });
    match live.advance(&p.frame, detection, started) {
        Ok(result) => {
            for event in &result.events {
                each(sinks, |sink| sink.event(event));
            }
            each(sinks, |sink| sink.frame(&p.frame, &result));
        }
        Err(e) => {
            live.bad_frame();
            eprintln!("edge: {}: {}", p.frame.origin, crate::error::one_line(&e));
        }
    }
    if let Some(every) = live.config.stats_every {
        if live.window.since.elapsed() >= every {
            let report = live.window.report();
            each(sinks, |sink| sink.stats(&report));
            live.window = Stats::default();
        }
    }
}

/// Calls every sink; a failing one is logged and the others still run.
fn each(sinks: &mut Sinks, mut call: impl FnMut(&mut dyn Sink) -> Result<()>) {
    for sink in sinks.iter_mut() {
        if let Err(e) = call(sink.as_mut()) {
            eprintln!("edge: {}: {e:#}", sink.name());
        }
    }
}
