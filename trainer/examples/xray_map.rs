//! `cargo run -p trainer --release --example xray_map -- RUN SET...`: does a run's Face X-ray head
//! (`--xray`) find blends it never trained on? Loads RUN's best checkpoint (the head is not
//! exported, so the ONNX model cannot say), scores the crops of each SET (`real/` and
//! `fake/<kind>/` as `trainer fakes` writes them, or `fake/` alone) and prints a CSV: set, kind (or `real`), file,
//! the classifier's p(FAKE), and the head's largest and mean logit over the map.

mod common;

use anyhow::{bail, Context, Result};
use common::crops;
use std::path::PathBuf;
use std::process::ExitCode;
use trainer::train::checkpoint::Checkpoints;
use trainer::train::fit::{batch, to_vec};

fn main() -> ExitCode {
    match probe() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xray_map: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn probe() -> Result<()> {
    let dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let Some((run, sets)) = dirs.split_first() else {
        bail!("usage: xray_map RUN SET...");
    };
    let cfg = trainer::run::saved_config(run)?.train;
    let plain = cfg.backend.device(cfg.device)?;
    let restored = Checkpoints::new(run, true).restore(&cfg, &plain.clone().autodiff(), &plain)?;
    let model = restored.best_model;
    let meta = trainer::run::model_meta();
    let size = cfg.input_size;
    println!("set,kind,file,p_fake,map_max,map_mean");
    for set in sets {
        let mut groups = vec![("real".to_string(), set.join("real"))];
        // fake/<kind>/ folders, or the crops in fake/ itself (one kind, as LOKO's sets hold).
        let mut kinds: Vec<PathBuf> = std::fs::read_dir(set.join("fake"))
            .with_context(|| format!("{}: no fake/ folder", set.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        kinds.sort();
        groups.push(("fake".into(), set.join("fake")));
        for k in kinds {
            groups.push((k.file_name().unwrap_or_default().to_string_lossy().into(), k));
        }
        for (kind, dir) in groups {
            for (name, img) in crops(&dir)? {
                let img = image::imageops::resize(&img, size, size, image::imageops::Triangle);
                let (logit, map) = model.forward_with_xray(batch(&[img], &meta, &plain));
                let map = to_vec(map.context("the run has no X-ray head")?)?;
                let p = 1.0 / (1.0 + (-to_vec(logit)?[0]).exp());
                let max = map.iter().cloned().fold(f32::MIN, f32::max);
                let mean = map.iter().sum::<f32>() / map.len() as f32;
                println!("{},{kind},{name},{p},{max},{mean}", set.display());
            }
        }
    }
    Ok(())
}
