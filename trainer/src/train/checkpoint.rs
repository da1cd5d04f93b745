//! Per-epoch checkpoints of a training run in `<run>/checkpoints/`, from which `--resume`
//! continues an interrupted run to the very result the uninterrupted run gives.
//!
//! After every epoch: `model-<epoch>.bpk` (the weights and batch-norm statistics, in burn's
//! burnpack format, which keeps the parameter ids that Adam's state is keyed by), `adam-<epoch>.bpk`
//! (Adam's moments and step counts) and, written last and atomically, `state.json` (the
//! configuration, the epoch, the history, the best epoch and the SHA-256 of each file it names,
//! checked on resume so a damaged file stops the run with its name instead of training on). Only
//! the latest epoch's files and the best epoch's model are kept.

use super::config::{EpochStats, TrainConfig};
use crate::nets::Net;
use crate::resume::changed_settings;
use anyhow::{anyhow, bail, ensure, Context, Result};
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The checkpoint folder inside a run folder.
pub const DIR: &str = "checkpoints";
const STATE: &str = "state.json";

#[derive(Serialize, Deserialize)]
struct State {
    /// The configuration the checkpoints were made with.
    config: TrainConfig,
    /// The last finished epoch, counted from 1.
    epoch: usize,
    best_epoch: usize,
    /// The epochs' statistics, with exact floats (see `exact_floats`).
    history: Value,
    /// SHA-256 (hex) of each checkpoint file by name; absent in checkpoints of older trainers.
    #[serde(default)]
    sha256: BTreeMap<String, String>,
}

/// The checkpoints of one run folder.
pub struct Checkpoints {
    dir: PathBuf,
    /// Continue from the latest checkpoint rather than start afresh.
    pub resume: bool,
}

/// What a checkpoint restores.
pub struct Restored {
    /// The last finished epoch.
    pub epoch: usize,
    pub history: Vec<EpochStats>,
    /// The latest model, in training mode on the autodiff device.
    pub model: Net,
    pub optim: ModuleOptimizer,
    pub best_epoch: usize,
    /// The best epoch's model, in validation mode.
    pub best_model: Net,
}

/// A fresh Adam, as training starts with and as checkpoints restore into.
pub fn adam() -> ModuleOptimizer {
    AdamConfig::new().init()
}

impl Checkpoints {
    pub fn new(run: &Path, resume: bool) -> Checkpoints {
        Checkpoints { dir: run.join(DIR), resume }
    }

    fn model_path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("model-{epoch}.bpk"))
    }

    fn adam_path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("adam-{epoch}.bpk"))
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE)
    }

    /// Removes the checkpoints of an earlier run, so a fresh run can never be resumed from them.
    pub fn clear(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Writes epoch `epoch`'s checkpoint; `model` must have been through `valid()` since its last
    /// training step, so that its batch-norm statistics include the last batch (burn folds a
    /// running-statistics update in only when the value is next read).
    pub fn save(
        &self,
        cfg: &TrainConfig,
        model: &Net,
        optim: &ModuleOptimizer,
        history: &[EpochStats],
        best_epoch: usize,
    ) -> Result<()> {
        let epoch = history.len();
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let model_path = self.model_path(epoch);
        let mut store = BurnpackStore::from_file(&model_path).auto_extension(false).overwrite(true);
        model
            .save_into(&mut store)
            .map_err(|e| anyhow!("cannot write {}: {}", model_path.display(), e))?;
        let adam_path = self.adam_path(epoch);
        optim
            .save(&adam_path)
            .map_err(|e| anyhow!("cannot write {}: {}", adam_path.display(), e))?;
        let keep = [self.model_path(epoch), self.model_path(best_epoch), adam_path];
        let mut sha256 = BTreeMap::new();
        for path in &keep {
            sha256.insert(file_name(path), digest(path)?);
        }
        let state = State {
            config: cfg.clone(),
            epoch,
            best_epoch,
            history: exact_floats(serde_json::to_value(history)?),
            sha256,
        };
        edge::output::write_atomically(&self.state_path(), |tmp| {
            Ok(std::fs::write(tmp, serde_json::to_string_pretty(&state)?)?)
        })?;
        // Now that state.json names the new files, the older ones can go.
        for entry in std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "bpk") && !keep.contains(&path) {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// The latest checkpoint, checked against `cfg` (which may differ only in `resume::RESUMABLE`
    /// settings). `device` is the training (autodiff) device, `plain` its inner device.
    pub fn restore(&self, cfg: &TrainConfig, device: &Device, plain: &Device) -> Result<Restored> {
        let path = self.state_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: no checkpoint to resume from", path.display()))?;
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a checkpoint state", path.display()))?;
        let changed = changed_settings(&state.config, cfg)?;
        if let Some((name, saved, now)) = changed.first() {
            bail!(
                "{}: the checkpoint was made with {name} = {saved}, this run has {now}",
                path.display()
            );
        }
        let history: Vec<EpochStats> = serde_json::from_value(exact_floats_back(state.history)?)
            .with_context(|| format!("{}: unreadable history", path.display()))?;
        ensure!(
            history.len() == state.epoch
                && state.best_epoch >= 1
                && state.best_epoch <= state.epoch,
            "{}: inconsistent checkpoint (epoch {}, {} history entries, best epoch {})",
            path.display(),
            state.epoch,
            history.len(),
            state.best_epoch
        );
        ensure!(
            state.epoch <= cfg.epochs,
            "{}: the checkpoint is at epoch {}, beyond --epochs {}",
            path.display(),
            state.epoch,
            cfg.epochs
        );
        let adam_path = self.adam_path(state.epoch);
        for file in
            [self.model_path(state.epoch), self.model_path(state.best_epoch), adam_path.clone()]
        {
            ensure!(file.is_file(), "{}: missing", file.display());
            if let Some(expected) = state.sha256.get(&file_name(&file)) {
                ensure!(
                    digest(&file)? == *expected,
                    "{}: damaged (its SHA-256 is not the one {} recorded); start a new run",
                    file.display(),
                    STATE
                );
            }
        }
        let model = self.load_model(cfg, state.epoch, device)?;
        let optim =
            adam().load(&adam_path).map_err(|e| anyhow!("{}: {}", adam_path.display(), e))?;
        let best_model = if state.best_epoch == state.epoch {
            model.valid()
        } else {
            self.load_model(cfg, state.best_epoch, plain)?
        };
        Ok(Restored {
            epoch: state.epoch,
            history,
            model,
            optim,
            best_epoch: state.best_epoch,
            best_model,
        })
    }

    fn load_model(&self, cfg: &TrainConfig, epoch: usize, device: &Device) -> Result<Net> {
        let path = self.model_path(epoch);
        ensure!(path.is_file(), "{}: missing", path.display());
        let mut model = cfg.network(device);
        let mut store = BurnpackStore::from_file(&path).auto_extension(false);
        model.load_from(&mut store).map_err(|e| anyhow!("{}: {}", path.display(), e))?;
        Ok(model)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The SHA-256 of a file, hex.
fn digest(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(crate::files::hex(&Sha256::digest(&bytes)))
}

/// serde_json reads decimals with a fast parser that can be one unit in the last place off, so a
/// resumed run's history would not always equal the uninterrupted run's. Floats are kept as
/// strings of Rust's shortest round-trip form instead, which `str::parse` reads back exactly.
fn exact_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(x) => Value::String(x.to_string()),
            None => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(exact_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, exact_floats(v))).collect())
        }
        v => v,
    }
}

fn exact_floats_back(v: Value) -> Result<Value> {
    Ok(match v {
        Value::String(s) => {
            let x: f64 = s.parse().with_context(|| format!("{s:?} is not a number"))?;
            Value::Number(
                serde_json::Number::from_f64(x).ok_or_else(|| anyhow!("{s} is not finite"))?,
            )
        }
        Value::Array(a) => {
            Value::Array(a.into_iter().map(exact_floats_back).collect::<Result<_>>()?)
        }
        Value::Object(o) => Value::Object(
            o.into_iter().map(|(k, v)| Ok((k, exact_floats_back(v)?))).collect::<Result<_>>()?,
        ),
        v => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_survive_the_state_file_bit_for_bit() {
        // 17 significant digits: the kind serde_json's own parser may round differently.
        let values = [0.1 + 0.2, std::f64::consts::LN_2, 1.0 / 3.0, 5e-324, 0.9999999999999999];
        let text = serde_json::to_string(&exact_floats(serde_json::json!(values))).expect("JSON");
        let back: Vec<f64> = serde_json::from_value(
            exact_floats_back(serde_json::from_str(&text).expect("JSON")).expect("numbers"),
        )
        .expect("floats");
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} came back as {b}");
        }
    }
}
