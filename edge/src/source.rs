//! Where frames come from: a camera, a folder of images played as frames, or single files; and
//! what the real-time loop needs of any of them (keep only the newest frame, reopen a lost source
//! with back-off). The loop sees only [`FrameSource`], so everything but the V4L2 calls is tested
//! here without a camera.

use anyhow::{bail, Context, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One captured frame.
pub struct Frame {
    pub image: RgbImage,
    /// Position in the source's sequence (0, 1, 2, …). Gaps are frames the loop never saw.
    pub seq: u64,
    /// When the frame was captured (or read).
    pub captured: Instant,
    /// Where it came from, for reports: a file path, or `camera 0`.
    pub origin: String,
}

/// Why a source gave no frame.
#[derive(Debug)]
pub enum SourceError {
    /// This frame was bad (a corrupt file in a folder, a broken MJPEG frame); the source goes on.
    Frame(anyhow::Error),
    /// The source is gone (camera unplugged); it must be reopened.
    Lost(anyhow::Error),
    /// No frame yet (a camera away, waiting to be reopened); ask again. Sources that wait
    /// return this at least every [`IDLE`], so the loop stays responsive (signals, watchdog).
    Idle,
}

/// The longest a waiting source blocks before returning [`SourceError::Idle`].
pub const IDLE: Duration = Duration::from_secs(1);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Frame(e) => write!(f, "{e:#}"),
            SourceError::Lost(e) => write!(f, "source lost: {e:#}"),
            SourceError::Idle => f.write_str("no frame yet"),
        }
    }
}

impl std::error::Error for SourceError {}

/// A sequence of frames.
pub trait FrameSource: Send {
    /// Blocks until the next frame. `Ok(None)`: the source has ended (the last image of a folder).
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// A short description for logs: `camera 0 (640×480 MJPEG, 30 fps)`, `folder frames/ (300 images)`.
    fn describe(&self) -> String;
}

/// Opens (and, after a loss, reopens) a source.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>> + Send>;

/// A folder of images played as frames, in name order (recursively, as `edge --file` lists
/// folders): the camera's stand-in for tests and benchmarks.
pub struct FolderSource {
    dir: PathBuf,
    paths: Vec<PathBuf>,
    next: usize,
    seq: u64,
    looping: bool,
    /// Paces frames like a camera at this rate; `None` reads as fast as the loop asks.
    interval: Option<Duration>,
    due: Option<Instant>,
}

impl FolderSource {
    /// Lists the images of `dir`; fails if it cannot be listed or holds no image.
    pub fn open(dir: &Path, looping: bool, fps: Option<f64>) -> Result<Self> {
        let mut paths = vec![];
        for (path, listed) in crate::cli::expand_inputs(&[dir.to_path_buf()]) {
            listed.with_context(|| format!("frames folder {}", path.display()))?;
            paths.push(path);
        }
        if !dir.is_dir() {
            bail!("frames folder {}: not a folder", dir.display());
        }
        if paths.is_empty() {
            bail!("frames folder {}: no images in it", dir.display());
        }
        let interval = match fps {
            Some(f) if f.is_finite() && f > 0.0 => Some(Duration::from_secs_f64(1.0 / f)),
            Some(f) => bail!("frame rate {f}: must be a positive number"),
            None => None,
        };
        Ok(FolderSource {
            dir: dir.to_path_buf(),
            paths,
            next: 0,
            seq: 0,
            looping,
            interval,
            due: None,
        })
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.next == self.paths.len() {
            if !self.looping {
                return Ok(None);
            }
            self.next = 0;
        }
        if let Some(interval) = self.interval {
            let due = self.due.unwrap_or_else(Instant::now);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // A slow reader does not make the "camera" burst to catch up.
            self.due = Some(due.max(Instant::now() - interval) + interval);
        }
        let path = &self.paths[self.next];
        self.next += 1;
        let seq = self.seq;
        self.seq += 1;
        let image = crate::decode::open(path).map_err(SourceError::Frame)?;
        Ok(Some(Frame { image, seq, captured: Instant::now(), origin: path.display().to_string() }))
    }

    fn describe(&self) -> String {
        format!("folder {} ({} images)", self.dir.display(), self.paths.len())
    }
}

/// Back-off between attempts to reopen a lost source: doubles from `initial` up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

/// A source that reopens itself when it is lost (a camera unplugged and plugged back), waiting
/// with back-off between attempts and logging each to stderr; while it waits it returns
/// [`SourceError::Idle`] every [`IDLE`]. Sequence numbers continue across reopenings. Ends
/// (`Ok(None)`) when the inner source ends or `stop` is set.
pub struct Reconnecting {
    opener: Opener,
    current: Option<Box<dyn FrameSource>>,
    backoff: Backoff,
    stop: Arc<AtomicBool>,
    name: String,
    /// When to try to reopen next, and the wait after that attempt if it fails.
    retry_at: Instant,
    wait: Duration,
    /// Added to the inner source's sequence numbers (it restarts at 0 when reopened).
    base: u64,
    next_seq: u64,
    /// How many times the source was lost.
    pub losses: u64,
}

impl Reconnecting {
    /// `first` is the source as opened at start-up (so a missing camera fails there, once).
    pub fn new(
        first: Box<dyn FrameSource>,
        opener: Opener,
        backoff: Backoff,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let name = first.describe();
        Reconnecting {
            opener,
            current: Some(first),
            backoff,
            stop,
            name,
            retry_at: Instant::now(),
            wait: backoff.initial,
            base: 0,
            next_seq: 0,
            losses: 0,
        }
    }

    /// Tries to reopen the source when its time has come; otherwise sleeps towards it.
    fn reopen(&mut self) -> Result<(), SourceError> {
        let now = Instant::now();
        if now < self.retry_at {
            std::thread::sleep((self.retry_at - now).min(IDLE));
            return Err(SourceError::Idle);
        }
        match (self.opener)() {
            Ok(source) => {
                eprintln!("edge: {} is back: {}", self.name, source.describe());
                self.current = Some(source);
                self.base = self.next_seq;
                self.wait = self.backoff.initial;
                Ok(())
            }
            Err(e) => {
                eprintln!(
                    "edge: {}: cannot reopen ({e:#}); retrying in {:.1} s",
                    self.name,
                    self.wait.as_secs_f64()
                );
                self.retry_at = Instant::now() + self.wait;
                self.wait = (self.wait * 2).min(self.backoff.max);
                Err(SourceError::Idle)
            }
        }
    }
}

impl FrameSource for Reconnecting {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let Some(source) = self.current.as_mut() else {
            self.reopen()?;
            return Err(SourceError::Idle);
        };
        match source.next_frame() {
            Err(SourceError::Lost(e)) => {
                self.losses += 1;
                eprintln!("edge: {} lost: {e:#}", self.name);
                self.current = None;
                self.retry_at = Instant::now() + self.wait;
                Err(SourceError::Idle)
            }
            Ok(Some(mut frame)) => {
                frame.seq += self.base;
                self.next_seq = frame.seq + 1;
                Ok(Some(frame))
            }
            other => other,
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// What the capture thread left for the loop.
enum Slot {
    Empty,
    Frame(Frame),
    Bad(SourceError),
    Ended,
}

struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
    captured: AtomicU64,
}

/// Reads a source on its own thread and keeps only the newest frame, so a loop slower than the
/// camera processes the latest picture instead of a queue of stale ones. The frames it never
/// took show as gaps in `seq`; [`Newest::captured`] counts every frame read. A source that
/// delivers nothing for `stall` (a camera that hangs without going away) is reported lost, so a
/// [`Reconnecting`] around this reopens it; the stuck thread is abandoned.
pub struct Newest {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    halt: Arc<AtomicBool>,
    name: String,
    stall: Duration,
    last_frame: Instant,
}

impl Newest {
    /// Starts the capture thread. Setting `stop` ends it after its current read.
    pub fn spawn(
        mut source: Box<dyn FrameSource>,
        stop: Arc<AtomicBool>,
        stall: Duration,
    ) -> Result<Self> {
        let name = source.describe();
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::Empty),
            ready: Condvar::new(),
            captured: AtomicU64::new(0),
        });
        let halt = Arc::new(AtomicBool::new(false));
        let (inner, halted, stopped) = (shared.clone(), halt.clone(), stop.clone());
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                while !halted.load(Ordering::Relaxed) && !stopped.load(Ordering::Relaxed) {
                    let next = match source.next_frame() {
                        Ok(Some(frame)) => {
                            inner.captured.fetch_add(1, Ordering::Relaxed);
                            Slot::Frame(frame)
                        }
                        Ok(None) => Slot::Ended,
                        Err(e) => Slot::Bad(e),
                    };
                    if matches!(next, Slot::Bad(SourceError::Idle)) {
                        continue;
                    }
                    let is_frame = matches!(next, Slot::Frame(_));
                    let end = matches!(next, Slot::Ended | Slot::Bad(SourceError::Lost(_)));
                    let mut slot = inner.slot.lock().unwrap_or_else(|p| p.into_inner());
                    // A newer frame replaces an unread one; an error or the end waits until
                    // the loop has taken what is there, so neither is lost.
                    while !is_frame && !matches!(*slot, Slot::Empty) {
                        if halted.load(Ordering::Relaxed) {
                            return;
                        }
                        slot = inner
                            .ready
                            .wait_timeout(slot, Duration::from_millis(100))
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    *slot = next;
                    drop(slot);
                    inner.ready.notify_all();
                    if end {
                        break;
                    }
                }
            })
            .context("cannot start the capture thread")?;
        Ok(Newest { shared, stop, halt, name, stall, last_frame: Instant::now() })
    }

    /// Frames read from the source so far (taken or not).
    pub fn captured(&self) -> u64 {
        self.shared.captured.load(Ordering::Relaxed)
    }
}

impl FrameSource for Newest {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let waited = Instant::now();
        let mut slot = self.shared.slot.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let taken = std::mem::replace(&mut *slot, Slot::Empty);
            if !matches!(taken, Slot::Empty) {
                self.shared.ready.notify_all();
            }
            match taken {
                Slot::Frame(frame) => {
                    self.last_frame = Instant::now();
                    return Ok(Some(frame));
                }
                Slot::Bad(e) => return Err(e),
                Slot::Ended => {
                    *slot = Slot::Ended;
                    return Ok(None);
                }
                Slot::Empty if self.stop.load(Ordering::Relaxed) => return Ok(None),
                Slot::Empty if self.last_frame.elapsed() >= self.stall => {
                    self.halt.store(true, Ordering::Relaxed);
                    let secs = self.stall.as_secs_f64();
                    return Err(SourceError::Lost(anyhow::anyhow!("no frame for {secs:.0} s")));
                }
                Slot::Empty if waited.elapsed() >= IDLE => return Err(SourceError::Idle),
                Slot::Empty => {
                    slot = self
                        .shared
                        .ready
                        .wait_timeout(slot, Duration::from_millis(100))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl Drop for Newest {
    /// Stops the capture thread (it may be blocked in a read; it is not joined).
    fn drop(&mut self) {
        self.halt.store(true, Ordering::Relaxed);
    }
}
