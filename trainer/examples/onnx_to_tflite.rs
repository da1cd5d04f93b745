//! `cargo run -p trainer --example onnx_to_tflite -- IN.onnx OUT.tflite`: the TFLite form of a
//! classifier the trainer exported as ONNX (e.g. models/classifier.onnx), written as a training
//! run writes its model.tflite, with the metadata sidecar `OUT.json` that a .tflite needs. The
//! runtime comparison (edge/benches/compare) uses it to give LiteRT the same weights.

use anyhow::{Context, Result};
use edge::infer::classify::{sidecar_path, Classifier};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match convert() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onnx_to_tflite: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn convert() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [onnx, tflite] = args.as_slice() else {
        anyhow::bail!("usage: onnx_to_tflite IN.onnx OUT.tflite");
    };
    // Loading checks the model and reads its metadata, which the .tflite cannot carry.
    let meta = Classifier::load(onnx)?.meta;
    let bytes = std::fs::read(onnx).with_context(|| format!("cannot read {}", onnx.display()))?;
    let written = trainer::export::tflite::write(&bytes)
        .with_context(|| format!("{}: cannot write as TFLite", onnx.display()))?;
    std::fs::write(tflite, written)
        .with_context(|| format!("cannot write {}", tflite.display()))?;
    let sidecar = sidecar_path(tflite);
    std::fs::write(&sidecar, serde_json::to_string_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", sidecar.display()))?;
    // The .tflite must load in tract (as `edge --model` would load it) before it is used.
    Classifier::load(tflite)?;
    Ok(())
}
