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
