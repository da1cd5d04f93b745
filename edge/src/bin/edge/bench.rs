//! `edge bench`: the pipeline's stages, the models alone, or tract's per-node profile, timed on
//! one image.

use crate::cli::BenchOptions;
use anyhow::{Context, Result};
use edge::infer::{bench, kernels};
use std::path::PathBuf;
use std::process::ExitCode;

/// What `edge bench` measures.
enum BenchMode {
    Stages,
    ModelOnly(Option<PathBuf>),
    Profile(usize),
}

/// Prints the timings `options` ask for, as a Markdown table or JSON.
pub fn run(options: &BenchOptions) -> Result<ExitCode> {
    let BenchOptions { file, runs, json, model_only, dump, profile, top, models } = options;
    let (file, runs, json) = (file.as_path(), *runs, *json);
    let mode = match (model_only, profile) {
        (true, _) => BenchMode::ModelOnly(dump.clone()),
        (_, true) => BenchMode::Profile(*top),
        _ => BenchMode::Stages,
    };
    let pipeline = models.pipeline()?;
    match mode {
        BenchMode::Stages => {
            let report = bench::run(&pipeline, file, runs)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.to_markdown());
                println!("\n{}", kernels::describe());
            }
        }
        BenchMode::ModelOnly(dump) => {
            if let Some(dir) = &dump {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create folder {}", dir.display()))?;
            }
            let prepared = bench::prepare(&pipeline, file)?;
            let timings = bench::model_only(&prepared, runs, dump.as_deref())?;
            if json {
                println!("{}", serde_json::to_string(&timings)?);
            } else {
                println!("| model | input | runs | median ms | p90 ms |\n| --- | --- | ---: | ---: | ---: |");
                for t in timings {
                    println!(
                        "| {} | {:?} | {} | {:.3} | {:.3} |",
                        t.model, t.input_shape, t.runs, t.ms.median, t.ms.p90
                    );
                }
                println!("\n{}", kernels::describe());
            }
        }
        BenchMode::Profile(top) => {
            let prepared = bench::prepare(&pipeline, file)?;
            let profiles =
                prepared.iter().map(|p| bench::profile(p, runs)).collect::<Result<Vec<_>>>()?;
            if json {
                println!("{}", serde_json::to_string(&profiles)?);
            } else {
                for p in profiles {
                    println!("{}", p.to_markdown(top));
                }
                println!("{}", kernels::describe());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
