//! The check that both exported files, loaded through `edge` as the board loads them, give burn's
//! own p(FAKE) on the validation faces.

use crate::train::Item;
use anyhow::{ensure, Result};
use edge::infer::classify::Classifier;
use serde::Serialize;
use std::path::Path;

/// Largest |p(FAKE) difference| allowed between burn and each exported model.
pub const PARITY_TOLERANCE: f32 = 1e-4;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Parity {
    pub onnx_max_abs_diff: f32,
    pub tflite_max_abs_diff: f32,
    pub images: usize,
}

/// Loads both exported files through `edge` and compares their p(FAKE) with burn's.
pub fn check_parity(onnx: &Path, tflite: &Path, items: &[Item], burn_p: &[f32]) -> Result<Parity> {
    let mut parity =
        Parity { onnx_max_abs_diff: 0.0, tflite_max_abs_diff: 0.0, images: items.len() };
    for (path, worst) in
        [(onnx, &mut parity.onnx_max_abs_diff), (tflite, &mut parity.tflite_max_abs_diff)]
    {
        let classifier = Classifier::load(path)?;
        for (item, &expected) in items.iter().zip(burn_p) {
            let p = classifier.p_fake(&item.image)?;
            *worst = worst.max((p - expected).abs());
        }
        ensure!(
            *worst <= PARITY_TOLERANCE,
            "{} gives p(FAKE) up to {worst:.2e} away from burn's (allowed {PARITY_TOLERANCE:.0e})",
            path.display()
        );
    }
    Ok(parity)
}
