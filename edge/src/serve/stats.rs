//! What the server has done since it started: counters and per-stage latency histograms, as
//! JSON (`GET /api/stats`) and in Prometheus' text format (`GET /metrics`).

use crate::infer::pipeline::{ImageReport, Timings};
use crate::Label;
use serde::Serialize;
use std::fmt::Write;

/// Upper bounds of the latency buckets, in seconds: a Pi 4's detector pass is tens of
/// milliseconds, a large photo's decode up to seconds.
const BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The stages timed for each analysed image, in the order of [`Stats::stages`].
pub const STAGES: [&str; 5] = ["decode", "detect", "crop", "classify", "total"];

/// A latency histogram: counts per bucket of [`BUCKETS`] (not cumulative), the sum and count.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        let bucket = BUCKETS.iter().position(|&b| seconds <= b).unwrap_or(BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64 * 1e3)
    }
}

/// The counters of one server.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// `POST /api/analyze` requests received.
    pub requests: u64,
    /// Images analysed (200 responses).
    pub analysed: u64,
    /// Uploads refused as bad input (4xx).
    pub bad_input: u64,
    /// Uploads turned away because the analysis queue was full (503).
    pub busy: u64,
    pub faces: u64,
    /// Faces labelled FAKE.
    pub fake: u64,
    /// One histogram per entry of [`STAGES`].
    pub stages: [Histogram; STAGES.len()],
}

/// `GET /api/stats`.
#[derive(Serialize)]
struct StatsJson {
    requests: u64,
    analysed: u64,
    bad_input: u64,
    busy: u64,
    faces: u64,
    fake: u64,
    /// Mean milliseconds per stage over the analysed images (absent before the first).
    mean_ms: std::collections::BTreeMap<&'static str, f64>,
}

impl Stats {
    /// Counts one analysed image.
    pub fn record(&mut self, report: &ImageReport, total_ms: f64) {
        self.analysed += 1;
        self.faces += report.faces.len() as u64;
        self.fake += report.faces.iter().filter(|f| f.label == Some(Label::Fake)).count() as u64;
        let Timings { decode, detect, crop, classify } = report.timings_ms;
        for (h, ms) in self.stages.iter_mut().zip([decode, detect, crop, classify, total_ms]) {
            h.observe(ms / 1e3);
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let mean_ms = STAGES
            .iter()
            .zip(&self.stages)
            .filter_map(|(&name, h)| Some((name, h.mean_ms()?)))
            .collect();
        serde_json::to_value(StatsJson {
            requests: self.requests,
            analysed: self.analysed,
            bad_input: self.bad_input,
            busy: self.busy,
            faces: self.faces,
            fake: self.fake,
            mean_ms,
        })
        .unwrap_or_default()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let counters = [
            ("edge_analyze_requests_total", "Analysis requests received.", self.requests),
            ("edge_images_analysed_total", "Images analysed.", self.analysed),
            ("edge_bad_input_total", "Uploads refused as bad input.", self.bad_input),
            ("edge_busy_total", "Uploads turned away with the queue full.", self.busy),
            ("edge_faces_total", "Faces found.", self.faces),
            ("edge_fake_faces_total", "Faces labelled FAKE.", self.fake),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let name = "edge_stage_seconds";
        let _ = writeln!(out, "# HELP {name} Time per stage of an analysis.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (stage, h) in STAGES.iter().zip(&self.stages) {
            let mut cumulative = 0;
            for (i, count) in h.counts.iter().enumerate() {
                cumulative += count;
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), f64::to_string);
                let _ =
                    writeln!(out, "{name}_bucket{{stage=\"{stage}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_sum{{stage=\"{stage}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {}", h.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let mut stats = Stats::default();
        for seconds in [0.0005, 0.003, 0.003, 0.2, 30.0] {
            stats.stages[0].observe(seconds);
        }
        let text = stats.prometheus();
        assert!(text.contains("edge_stage_seconds_bucket{stage=\"decode\",le=\"0.001\"} 1\n"));
        assert!(text.contains("edge_stage_seconds_bucket{stage=\"decode\",le=\"0.005\"} 3\n"));
        assert!(text.contains("edge_stage_seconds_bucket{stage=\"decode\",le=\"0.25\"} 4\n"));
        assert!(text.contains("edge_stage_seconds_bucket{stage=\"decode\",le=\"10\"} 4\n"));
        assert!(text.contains("edge_stage_seconds_bucket{stage=\"decode\",le=\"+Inf\"} 5\n"));
        assert!(text.contains("edge_stage_seconds_count{stage=\"decode\"} 5\n"));
        assert!(text.contains("edge_stage_seconds_count{stage=\"detect\"} 0\n"));
        let mean = stats.stages[0].mean_ms().unwrap_or_default();
        assert!((mean - 30_206.5 / 5.0).abs() < 1e-6, "{mean}");
    }
}
