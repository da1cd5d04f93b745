//! `edge --file PATH...`: each image (folders walked) analysed on its own, reported as text or
//! JSON lines, with optional annotated copies and face crops.

use crate::cli::Cli;
use anyhow::{Context, Result};
use edge::error::one_line;
use edge::input::files::{expand_inputs, printable};
use edge::sinks::annotate;
use edge::sinks::lines::write_report;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Start-up failures are returned as errors (exit 2); failures of single inputs are reported as
/// they happen and make the exit code 1 once every other input has been processed.
pub fn run(cli: &Cli) -> Result<ExitCode> {
    let pipeline = cli.models.pipeline()?;
    for (flag, dir) in [("--annotate", &cli.annotate), ("--crops", &cli.crops)] {
        if let Some(dir) = dir {
            edge::output::check_writable(dir).context(flag)?;
        }
    }
    let mut names = HashSet::new();
    let mut failed = 0;
    let stdout = std::io::stdout();
    for (path, listed) in expand_inputs(&cli.file) {
        let outcome = listed.and_then(|()| {
            let (report, mut img) = pipeline.analyse_file(&path)?;
            let name = unique_png_name(&path, &mut names);
            if let Some(dir) = &cli.crops {
                for (i, face) in report.faces.iter().enumerate() {
                    let [x0, y0, x1, y1] = face.bbox;
                    let bbox = edge::BBox { x0, y0, x1, y1 };
                    let crop =
                        edge::infer::crop::face(&img, &bbox, pipeline.margin, pipeline.crop_size());
                    let stem = name.strip_suffix(".png").unwrap_or(&name);
                    let out = dir.join(format!("{stem}-face{}.png", i + 1));
                    crop.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
                }
            }
            if let Some(dir) = &cli.annotate {
                annotate::draw(&mut img, &report.faces);
                let out = dir.join(&name);
                img.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
            }
            Ok(report)
        });
        let mut out = stdout.lock();
        match outcome {
            Ok(report) if cli.json => writeln!(out, "{}", serde_json::to_string(&report)?)?,
            Ok(report) => write_report(&mut out, &report)?,
            Err(e) => {
                failed += 1;
                if cli.json {
                    let line = serde_json::json!({"file": printable(&path), "error": one_line(&e)});
                    writeln!(out, "{line}")?;
                } else {
                    eprintln!("edge: {}: {}", printable(&path), one_line(&e));
                }
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `<stem>.png`, with `-2`, `-3` … when inputs from different folders share a stem.
fn unique_png_name(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name = format!("{stem}.png");
    let mut k = 1;
    while !used.insert(name.clone()) {
        k += 1;
        name = format!("{stem}-{k}.png");
    }
    name
}
