//! Reopening a lost source.

use super::frame::{Frame, FrameSource, Opener, SourceError, IDLE};
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
