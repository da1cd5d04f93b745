//! The newest frame of a source read on its own thread.

use super::frame::{Frame, FrameSource, SourceError, IDLE};
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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
