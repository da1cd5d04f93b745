//! What the real-time loop tells the world: a face appeared, its label changed, it left. One JSON
//! object per event, the same on stdout (`--json`), in MQTT messages and in the service's log.

use crate::classify::Label;
use anyhow::Result;
use serde::Serialize;

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

/// Somewhere events go: stdout, an MQTT broker, a snapshot folder.
pub trait EventSink {
    fn send(&mut self, event: &Event) -> Result<()>;
}

/// Events as JSON lines on a writer (stdout for `--json`).
pub struct JsonLines<W: std::io::Write>(pub W);

impl<W: std::io::Write> EventSink for JsonLines<W> {
    fn send(&mut self, event: &Event) -> Result<()> {
        serde_json::to_writer(&mut self.0, event)?;
        writeln!(self.0)?;
        Ok(self.0.flush()?)
    }
}

/// Events as one line of text each: `2026-11-25T04:05:06.789Z face 3 appeared: REAL p_fake 0.124 box (10, 20)–(110, 120)`.
pub struct TextLines<W: std::io::Write>(pub W);

impl<W: std::io::Write> EventSink for TextLines<W> {
    fn send(&mut self, e: &Event) -> Result<()> {
        let what = match e.event {
            EventKind::Appeared => "appeared",
            EventKind::LabelChanged => "changed",
            EventKind::Left => "left",
        };
        let verdict = match (e.previous, e.label, e.p_fake) {
            (Some(from), Some(to), Some(p)) => format!(" {from} → {to} p_fake {p:.3}"),
            (None, Some(label), Some(p)) => format!(" {label} p_fake {p:.3}"),
            _ => String::new(),
        };
        let [x0, y0, x1, y1] = e.bbox;
        writeln!(
            self.0,
            "{} face {} {what}:{verdict} box ({x0:.0}, {y0:.0})–({x1:.0}, {y1:.0}) frame {}",
            e.time, e.track, e.frame
        )?;
        Ok(self.0.flush()?)
    }
}
