//! Lines of text: the live loop's events (`--json` lines or text) on stdout, its statistics on
//! stderr, and the text report of one image for `edge --file`.

use crate::infer::pipeline::ImageReport;
use crate::live::{Event, EventKind, Sink, StatsReport};
use anyhow::Result;
use std::io::Write;

/// Events as JSON lines on a writer (stdout for `--json`).
pub struct JsonLines<W: Write>(pub W);

impl<W: Write> Sink for JsonLines<W> {
    fn name(&self) -> &str {
        "json lines"
    }

    fn event(&mut self, event: &Event) -> Result<()> {
        serde_json::to_writer(&mut self.0, event)?;
        writeln!(self.0)?;
        Ok(self.0.flush()?)
    }
}

/// Events as one line of text each: `2026-11-25T04:05:06.789Z face 3 appeared: REAL p_fake 0.124 box (10, 20)–(110, 120)`.
pub struct TextLines<W: Write>(pub W);

impl<W: Write> Sink for TextLines<W> {
    fn name(&self) -> &str {
        "text lines"
    }

    fn event(&mut self, e: &Event) -> Result<()> {
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

/// The statistics of each interval on stderr, `edge: <report>` (the service's journal).
pub struct StatsLog;

impl Sink for StatsLog {
    fn name(&self) -> &str {
        "statistics log"
    }

    fn stats(&mut self, report: &StatsReport) -> Result<()> {
        eprintln!("edge: {report}");
        Ok(())
    }
}

/// One image as `edge --file` prints it: a line for the image, one per face.
pub fn write_report(out: &mut impl Write, r: &ImageReport) -> Result<()> {
    let t = r.timings_ms;
    let n = r.faces.len();
    let classify = if r.faces.iter().any(|f| f.p_fake.is_some()) {
        format!(", classify {:.1} ms", t.crop + t.classify)
    } else {
        String::new()
    };
    writeln!(
        out,
        "{}: {}×{}, {n} face{} (decode {:.1} ms, detect {:.1} ms{classify})",
        r.file,
        r.width,
        r.height,
        if n == 1 { "" } else { "s" },
        t.decode,
        t.detect,
    )?;
    for (i, f) in r.faces.iter().enumerate() {
        let [x0, y0, x1, y1] = f.bbox;
        let verdict = match (f.label, f.p_fake) {
            (Some(label), Some(p)) => format!("{label} p_fake {p:.3}  "),
            _ => String::new(),
        };
        writeln!(
            out,
            "  face {}: {verdict}box ({x0:.0}, {y0:.0})–({x1:.0}, {y1:.0})  score {:.2}",
            i + 1,
            f.score
        )?;
    }
    Ok(())
}
