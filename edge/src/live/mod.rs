//! The real-time loop over a camera or a folder: frames from a `source`, faces tracked
//! (`track`) between detector passes and classified every frame (`frame_loop`), `events` and
//! `stats` handed to every [`Sink`] (the outputs live in `crate::sinks`).

pub mod events;
pub mod frame_loop;
pub mod sink;
pub mod source;
pub mod stats;
pub mod track;

pub use events::{Event, EventKind, FrameResult};
pub use frame_loop::{run, Live, LiveConfig, Sinks, MAX_THREADS};
pub use sink::Sink;
pub use stats::StatsReport;
