//! The trained model as TFLite, written by tract from the exported ONNX (batch fixed to 1, as
//! TFLite wants). tract-tflite's writer is partial and reaches `todo!()` on operators it cannot
//! write, so it runs behind `edge::infer::model::contain_panics`.

use anyhow::{Context, Result};
use std::collections::HashMap;
use tract_onnx::prelude::*;

pub fn write(onnx: &[u8]) -> Result<Vec<u8>> {
    edge::infer::model::contain_panics(|| {
        let model = tract_onnx::onnx().model_for_read(&mut &onnx[..])?.into_typed()?;
        let batch = model.symbols.sym("N");
        let model =
            model.set_symbols(&HashMap::from([(batch, TDim::from(1))]))?.into_decluttered()?;
        let mut out = vec![];
        tract_tflite::tflite()
            .write(&model, &mut out)
            .context("tract cannot write this model as TFLite")?;
        Ok(out)
    })
}
