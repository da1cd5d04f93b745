//! Per-stage timings of the pipeline on one image, repeated: the figures behind `edge bench` and
//! `cargo bench`. Medians, because these machines are noisy; never asserted in tests.

use crate::crop;
use crate::pipeline::Pipeline;
use anyhow::Result;
use std::path::Path;
use std::time::Instant;

/// Median and 90th percentile of one stage, in milliseconds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Stat {
    pub median: f64,
    pub p90: f64,
}

impl Stat {
    fn of(mut samples: Vec<f64>) -> Stat {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Stat { median: at(0.5), p90: at(0.9) }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub file: String,
    pub runs: usize,
    pub faces: usize,
    pub decode: Stat,
    /// The whole detection stage (letterbox, model run per pass, decode, NMS).
    pub detect: Stat,
    /// One detector model run on a prepared input.
    pub detector_model: Stat,
    /// Crop of one face.
    pub crop: Stat,
    /// Classification of one face (normalisation and model run); none without a classifier.
    pub classify: Option<Stat>,
    /// Peak resident memory of this process so far (VmHWM), in MiB, where the OS reports it.
    pub peak_rss_mib: Option<f64>,
}

fn timed<T>(samples: &mut Vec<f64>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    let out = f()?;
    samples.push(t.elapsed().as_secs_f64() * 1e3);
    Ok(out)
}

/// Runs every stage `runs` times on `path` (after one warm-up run).
pub fn run(pipeline: &Pipeline, path: &Path, runs: usize) -> Result<BenchReport> {
    let runs = runs.max(1);
    let (mut dec, mut det, mut model, mut cr, mut cls) = (vec![], vec![], vec![], vec![], vec![]);
    let size = pipeline.crop_size();
    let mut faces = 0;
    for i in 0..=runs {
        let img = timed(&mut dec, || crate::decode::open(path))?;
        let found = timed(&mut det, || pipeline.detector.detect(&img))?;
        timed(&mut model, || pipeline.detector.run_blank())?;
        for face in &found {
            let c = timed(&mut cr, || Ok(crop::face(&img, &face.bbox, pipeline.margin, size)))?;
            if let Some(classifier) = &pipeline.classifier {
                timed(&mut cls, || classifier.p_fake(&c))?;
            }
        }
        faces = found.len();
        if i == 0 {
            // The warm-up run is not counted.
            for v in [&mut dec, &mut det, &mut model, &mut cr, &mut cls] {
                v.clear();
            }
        }
    }
    if faces == 0 {
        anyhow::bail!("{}: no face found, so crop and classify cannot be timed", path.display());
    }
    Ok(BenchReport {
        file: path.display().to_string(),
        runs,
        faces,
        decode: Stat::of(dec),
        detect: Stat::of(det),
        detector_model: Stat::of(model),
        crop: Stat::of(cr),
        classify: (!cls.is_empty()).then(|| Stat::of(cls)),
        peak_rss_mib: peak_rss_mib(),
    })
}

/// VmHWM from /proc/self/status, in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl BenchReport {
    /// A Markdown table of the medians.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "{} — {} runs, {} face(s)\n\n| stage | median ms | p90 ms |\n| --- | ---: | ---: |\n",
            self.file, self.runs, self.faces
        );
        for (name, stat) in [
            ("decode", Some(self.decode)),
            ("detect (whole stage)", Some(self.detect)),
            ("detector model run", Some(self.detector_model)),
            ("crop (per face)", Some(self.crop)),
            ("classify (per face)", self.classify),
        ] {
            let Some(stat) = stat else { continue };
            s += &format!("| {name} | {:.2} | {:.2} |\n", stat.median, stat.p90);
        }
        if let Some(mib) = self.peak_rss_mib {
            s += &format!("\npeak RSS {mib:.1} MiB\n");
        }
        s
    }
}
