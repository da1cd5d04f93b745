//! Model files to optimised tract plans, for both formats the project uses.
//!
//! tract's loaders can panic on files they do not expect (tract-tflite asserts on a dense layer
//! without bias, and unwraps optional flatbuffer fields), so every load runs behind
//! `catch_unwind`: a bad model is an error naming the file, never a crash.

use anyhow::{anyhow, bail, ensure, Context, Result};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Once;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::optim::{Optimizer, TypedPass};

pub type Plan = Arc<TypedSimplePlan>;

/// The container formats `edge` loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Onnx,
    Tflite,
}

impl Format {
    /// The format of a model file, from its content (not its name).
    pub fn sniff(bytes: &[u8]) -> Result<Format> {
        if bytes.len() >= 8 && &bytes[4..8] == b"TFL3" {
            Ok(Format::Tflite)
        } else if bytes.first() == Some(&0x08) {
            // An ONNX ModelProto starts with field 1 (ir_version, varint).
            Ok(Format::Onnx)
        } else {
            bail!("neither an ONNX nor a TFLite model (unrecognised content)")
        }
    }
}

/// A model ready to run, with the string properties its file carries (ONNX `metadata_props`).
pub struct Loaded {
    pub model: TypedModel,
    pub properties: HashMap<String, String>,
    pub format: Format,
}

/// Reads and parses a model file; the model is typed but not yet optimised.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = crate::input::files::read_regular(path).context("cannot read model file")?;
    if bytes.is_empty() {
        bail!("empty model file");
    }
    let format = Format::sniff(&bytes)?;
    contain_panics(|| match format {
        Format::Tflite => {
            let folded = super::tflite_fp16::fold_fp16_dequantize(&bytes)?;
            let model = tract_tflite::tflite()
                .model_for_read(&mut folded.as_deref().unwrap_or(&bytes))
                .context("TFLite model does not load in tract")?;
            Ok(Loaded { model, properties: HashMap::new(), format })
        }
        Format::Onnx => {
            let model = tract_onnx::onnx()
                .model_for_read(&mut &bytes[..])
                .context("ONNX model does not load in tract")?;
            let properties = model
                .properties
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.strip_prefix("onnx.metadata_props.")?;
                    let value = v.as_plain_ram()?.to_scalar::<String>().ok()?.clone();
                    Some((key.to_string(), value))
                })
                .collect();
            let model = model.into_typed().context("ONNX model has unresolved types or shapes")?;
            Ok(Loaded { model, properties, format })
        }
    })
}

/// Whether `plan` runs tract's axis-changing pass (`ChangeAxes`) with the rest of its graph
/// optimisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisPass {
    /// Run it: it moves axes through the graph, among other things so that depthwise layers run
    /// in the layout tract is fastest in.
    Run,
    /// Skip it, for a graph already in the layout it would choose. That pass is the costly part
    /// of the graph work at load (it applies its patches one by one).
    Skip,
}

/// Fixes the input shape (binding a symbolic batch or size to `input_shape`), optimises, and
/// makes the plan that is run for every frame.
pub fn plan(model: TypedModel, input_shape: &[usize], axes: AxisPass) -> Result<Plan> {
    contain_panics(|| {
        let shape = &model.input_fact(0)?.shape;
        ensure!(
            shape.len() == input_shape.len(),
            "input has rank {}, not {}",
            shape.len(),
            input_shape.len()
        );
        let mut symbols = HashMap::new();
        for (dim, &want) in shape.iter().zip(input_shape) {
            match dim {
                TDim::Sym(symbol) => {
                    symbols.insert(symbol.clone(), TDim::from(want));
                }
                dim => ensure!(
                    dim.to_usize().ok() == Some(want),
                    "input shape {shape:?} is not {input_shape:?}"
                ),
            }
        }
        let mut model = if symbols.is_empty() { model } else { model.set_symbols(&symbols)? };
        match axes {
            AxisPass::Run => model.declutter(),
            AxisPass::Skip => declutter_keeping_layout().optimize(&mut model),
        }
        .context("cannot declutter")?;
        model.optimize().context("cannot optimise")?;
        model.into_runnable()
    })
}

/// tract's declutter passes without its layout pass.
fn declutter_keeping_layout() -> Optimizer {
    let mut optimizer = Optimizer::declutter();
    optimizer.passes.retain(|pass| !is_layout_pass(pass.as_ref()));
    optimizer
}

/// tract's passes have no names but their `Debug` form (the type's name).
fn is_layout_pass(pass: &dyn TypedPass) -> bool {
    format!("{pass:?}").starts_with("ChangeAxes")
}

/// Runs `f`, turning a panic inside it into an error.
pub fn contain_panics<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    thread_local!(static CONTAINING: Cell<bool> = const { Cell::new(false) });
    // The default hook would print a backtrace-style message for a panic that is handled here.
    // The hook is process-wide, so it is silenced for this thread only: a panic elsewhere (a
    // failing test running beside a model load) is still reported.
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINING.get() {
                default(info);
            }
        }));
    });
    let was = CONTAINING.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINING.set(was);
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown cause".into());
            Err(anyhow!("the model loader failed on this file: {msg}"))
        }
    }
}

/// glibc hands every freed block above its mmap threshold (128 KiB at first) back to the kernel,
/// and tract's graph optimisation at load allocates, copies and frees weight tensors over and
/// over, so each new block is fresh pages faulted in one at a time. Blocks up to 16 MiB (the most
/// glibc accepts on 32-bit ARM) come from the heap instead, whose top is kept, so freed memory is
/// reused; start-up is faster and peak memory unchanged (docs/performance.md, start-up and memory).
/// Every analysis allocates and frees such blocks too, so a bench that compares against the
/// `edge` binary calls it as the binary does.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only sets the allocator's parameters; callers call it first thing, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `AxisPass::Skip` finds tract's layout pass by its type's name: a tract that renamed it
    /// would make `Keep` the same as `Optimise`, only slower to load, so that fails here.
    #[test]
    fn keeping_the_layout_drops_exactly_tracts_layout_pass() {
        let all = Optimizer::declutter().passes;
        let layout: Vec<String> =
            all.iter().filter(|p| is_layout_pass(p.as_ref())).map(|p| format!("{p:?}")).collect();
        assert_eq!(layout.len(), 1, "{all:?}");
        assert_eq!(declutter_keeping_layout().passes.len(), all.len() - 1);
    }
}
