//! The one shape of every output of the real-time loop: stdout lines, MQTT, snapshots, the
//! display, the service watchdog (and the web server and video writers to come).

use super::events::{Event, FrameResult};
use super::source::Frame;
use super::stats::StatsReport;
use anyhow::Result;

/// An output of the loop. Each method has a default that does nothing, so a sink implements
/// what it uses. The loop calls them in this order for a frame: `event` for each of its events,
/// then `frame`. An error is logged with the sink's name and the loop goes on: an output must not
/// stop the board.
pub trait Sink {
    /// Names the sink in log lines.
    fn name(&self) -> &str;
    /// A face appeared, changed label or left.
    fn event(&mut self, _event: &Event) -> Result<()> {
        Ok(())
    }
    /// A processed frame and everything tracked in it (for drawing).
    fn frame(&mut self, _frame: &Frame, _result: &FrameResult) -> Result<()> {
        Ok(())
    }
    /// The source has no new frame yet (called at least every [`super::source::IDLE`]).
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
    /// The statistics of the last interval (every `LiveConfig::stats_every`).
    fn stats(&mut self, _report: &StatsReport) -> Result<()> {
        Ok(())
    }
    /// The run is over (the source ended, was lost, or the loop was stopped): the whole run's
    /// statistics. Flush and close here.
    fn finish(&mut self, _report: &StatsReport) -> Result<()> {
        Ok(())
    }
}
