//! What the real-time loop tells the world: a face appeared, its label changed, it left. One JSON
//! object per event, the same on stdout (`--json`), in MQTT messages and in the service's log.
//! And a frame's whole outcome, which every sink is handed.

use crate::infer::classify::Label;
use crate::infer::pipeline::FaceReport;
use serde::Serialize;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new face track, once it has been classified.
    Appeared,
    /// The track's smoothed label crossed the threshold (with hysteresis).
    LabelChanged,
    /// The track was not detected for long enough to be dropped.
    Left,
}

/// One event; the field names are part of the interface (JSON lines, MQTT payloads).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub event: EventKind,
    /// Wall-clock time of the frame, RFC 3339 in UTC with milliseconds.
    pub time: String,
    /// The frame source (`camera 0`, a folder).
    pub source: String,
    /// Sequence number of the frame in its source.
    pub frame: u64,
    /// Track id, unique for the life of the process.
    pub track: u64,
    /// Last box of the face in frame pixels: x0, y0, x1, y1.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Smoothed p(FAKE); absent when running without a classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_fake: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// The label before a `label_changed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Label>,
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

/// One frame's outcome: what happened, and every tracked face as it stands (for drawing).
#[derive(Debug, Default)]
pub struct FrameResult {
    pub events: Vec<Event>,
    /// Track id and face, with the smoothed p(FAKE) and label.
    pub faces: Vec<(u64, FaceReport)>,
    /// Whether the detector ran on this frame.
    pub detected: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
