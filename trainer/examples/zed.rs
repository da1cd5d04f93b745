//! `cargo run -p trainer --example zed -- [--steps N] [--seed S] [--csv FILE] TRAIN SET...`: the
//! probe of
//! issue 25's third item. Trains `trainer::zed`'s model of real faces on the face crops in TRAIN
//! (e.g. the `real/` folder `trainer fakes` writes), then scores the crops of each SET (`real/`
//! and `fake/<kind>/`, as `trainer fakes` writes them) and prints, for each kind of fake, the ROC
//! AUC of every score taken as a FAKE score (above 0.5: fakes score higher; below: lower), and
//! how each score follows sharpness on the real faces (Spearman), the shortcut the probe warned of.
//! `--csv` also writes every face's scores (set, kind or `real`, file name, then the scores).

mod common;

use anyhow::{bail, Context, Result};
use common::crops;
use image::RgbImage;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trainer::eval::metrics::auc;
use trainer::eval::shortcuts::{spearman, Cues};
use trainer::zed::{RealFaceModel, Scores, LEVELS};

fn main() -> ExitCode {
    match probe() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zed: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The scores a line of the table reads: each level's surprise, the change between levels, and
/// the full-resolution cost.
fn features(s: &Scores) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> =
        (0..LEVELS).map(|l| (format!("surprise {l}"), s.surprise[l])).collect();
    for l in 0..LEVELS - 1 {
        out.push((format!("surprise {l} - {}", l + 1), s.surprise[l] - s.surprise[l + 1]));
    }
    out.push(("cost 0".into(), s.cost[0]));
    out
}

fn probe() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut steps, mut seed, mut csv, mut dirs) = (600usize, 1u64, None, vec![]);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--steps" => steps = args.next().context("--steps N")?.parse()?,
            "--seed" => seed = args.next().context("--seed S")?.parse()?,
            "--csv" => csv = Some(PathBuf::from(args.next().context("--csv FILE")?)),
            _ => dirs.push(PathBuf::from(arg)),
        }
    }
    let Some((train, sets)) = dirs.split_first() else {
        bail!("usage: zed [--steps N] [--seed S] [--csv FILE] TRAIN SET...");
    };
    let faces = crops(train)?;
    let refs: Vec<&RgbImage> = faces.iter().map(|(_, f)| f).collect();
    let start = std::time::Instant::now();
    let (model, fit) = RealFaceModel::train(&refs, steps, seed)?;
    eprintln!(
        "zed: learnt {} faces in {:.0} s ({steps} steps; cost {:.3} -> {:.3} nats per pixel)",
        faces.len(),
        start.elapsed().as_secs_f64(),
        fit.first,
        fit.last
    );
    let mut rows = vec![];
    let mut scored = |set: &Path, kind: &str, faces: &[(String, RgbImage)]| -> Result<_> {
        let scores: Vec<Vec<(String, f64)>> =
            faces.iter().map(|(_, f)| Ok(features(&model.score(f)?))).collect::<Result<_>>()?;
        for ((name, _), s) in faces.iter().zip(&scores) {
            let values: Vec<String> = s.iter().map(|(_, v)| v.to_string()).collect();
            rows.push(format!("{},{kind},{name},{}", set.display(), values.join(",")));
        }
        Ok(scores)
    };
    for set in sets {
        let real = crops(&set.join("real"))?;
        let real_scores = scored(set, "real", &real)?;
        // The audit's own sharpness cue (Laplacian variance of the luma).
        let sharp: Vec<f64> =
            real.iter().map(|(_, f)| Cues::of(f, [0.0; 4], b"").sharpness).collect();
        let mut kinds: Vec<PathBuf> = std::fs::read_dir(set.join("fake"))
            .with_context(|| format!("cannot read {}", set.join("fake").display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        kinds.sort();
        let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kind in &kinds {
            let fakes = crops(kind)?;
            let name = kind.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let fake_scores = scored(set, &name, &fakes)?;
            let is_fake: Vec<bool> =
                real.iter().map(|_| false).chain(fakes.iter().map(|_| true)).collect();
            for (i, (name, _)) in real_scores[0].iter().enumerate() {
                let values: Vec<f32> =
                    real_scores.iter().chain(&fake_scores).map(|s| s[i].1 as f32).collect();
                table
                    .entry(name.clone())
                    .or_default()
                    .push(format!("{:.3}", auc(&values, &is_fake)));
            }
        }
        let names: Vec<String> = kinds
            .iter()
            .map(|k| k.file_name().unwrap_or_default().to_string_lossy().into())
            .collect();
        println!("{} ({} real faces)", set.display(), real.len());
        println!("| score | {} | Spearman with sharpness (real) |", names.join(" | "));
        println!("| --- |{}---: |", " ---: |".repeat(names.len()));
        for (i, (name, _)) in real_scores[0].iter().enumerate() {
            let values: Vec<f64> = real_scores.iter().map(|s| s[i].1).collect();
            let aucs = table.get(name).map(|a| a.join(" | ")).unwrap_or_default();
            println!("| {name} | {aucs} | {:.2} |", spearman(&values, &sharp));
        }
    }
    if let Some(csv) = csv {
        let header: Vec<String> =
            features(&Scores { surprise: [0.0; LEVELS], cost: [0.0; LEVELS] })
                .into_iter()
                .map(|(name, _)| name)
                .collect();
        let text = format!("set,kind,file,{}\n{}\n", header.join(","), rows.join("\n"));
        std::fs::write(&csv, text).with_context(|| format!("cannot write {}", csv.display()))?;
    }
    Ok(())
}
