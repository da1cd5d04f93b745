//! The loop's running statistics: counters and mean stage times over an interval, as printed on
//! stderr, published over MQTT and sent to systemd.

use serde::Serialize;
use std::time::Instant;

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
    pub(super) fn record(&mut self, seq: u64, detected: bool, faces: usize, ms: &StageMs) {
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
