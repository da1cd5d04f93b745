//! Makes TFLite files with fp16 weights loadable by tract-tflite.
//!
//! MediaPipe publishes BlazeFace with its weights stored as fp16 tensors, each feeding a `DEQUANTIZE`
//! op that widens it to f32 at run time. tract-tflite 0.23 has no `DEQUANTIZE`, and its op registry
//! is private, so instead the model is rewritten before tract sees it: every `DEQUANTIZE` of an fp16
//! constant is dropped and its output tensor becomes an f32 constant holding the widened weights.
//!
//! The rewrite copies nothing it does not change. Flatbuffer offsets are relative and point forward,
//! so the original file is embedded whole at the tail of the new buffer and the few new tables
//! (model, subgraphs, the changed tensors and buffers, and the vectors listing them) are written in
//! front of it, referring back into the untouched original for everything else (operator options,
//! shapes, names, quantisation, signatures, metadata).

use anyhow::{Context, Result};
use flatbuffers::{FlatBufferBuilder, WIPOffset};
use tract_tflite::prelude::f16;
use tract_tflite::tflite;

/// An fp16 constant widened by a `DEQUANTIZE` op that the rewrite removes.
struct Fold {
    subgraph: usize,
    operator: usize,
    /// The op's output tensor, which becomes the f32 constant.
    tensor: usize,
    /// The widened values, little-endian f32.
    data: Vec<u8>,
}

/// Returns the model with every fp16 `DEQUANTIZE` folded into an f32 constant, or `None` when the
/// model has none (it is then loaded as it is).
pub fn fold_fp16_dequantize(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let model = tflite::root_as_model(bytes).context("not a valid TFLite flatbuffer")?;
    let folds = find_folds(&model)?;
    if folds.is_empty() {
        return Ok(None);
    }
    Ok(Some(rewrite(bytes, &model, &folds)))
}

fn find_folds(model: &tflite::Model) -> Result<Vec<Fold>> {
    let codes = model.operator_codes().context("TFLite model has no operator codes")?;
    let is_dequantize: Vec<bool> = codes
        .iter()
        .map(|c| {
            // Files written before the 127th op kept the code in `deprecated_builtin_code` only.
            let code = c.builtin_code().0.max(c.deprecated_builtin_code() as i32);
            code == tflite::BuiltinOperator::DEQUANTIZE.0
        })
        .collect();
    let buffers = model.buffers().context("TFLite model has no buffers")?;
    let mut folds = vec![];
    for (g, graph) in model.subgraphs().into_iter().flatten().enumerate() {
        let (Some(tensors), Some(ops)) = (graph.tensors(), graph.operators()) else { continue };
        for (o, op) in ops.iter().enumerate() {
            if !is_dequantize.get(op.opcode_index() as usize).copied().unwrap_or(false) {
                continue;
            }
            let (Some(inputs), Some(outputs)) = (op.inputs(), op.outputs()) else { continue };
            if inputs.len() != 1 || outputs.len() != 1 {
                continue;
            }
            let tensor_at = |i: i32| usize::try_from(i).ok().filter(|&i| i < tensors.len());
            let (Some(src), Some(dst)) = (tensor_at(inputs.get(0)), tensor_at(outputs.get(0)))
            else {
                continue;
            };
            let (src_t, dst_t) = (tensors.get(src), tensors.get(dst));
            if src_t.type_() != tflite::TensorType::FLOAT16
                || dst_t.type_() != tflite::TensorType::FLOAT32
            {
                continue;
            }
            let buffer = src_t.buffer() as usize;
            if buffer == 0 || buffer >= buffers.len() {
                continue; // not a constant: a run-time dequantize, which this rewrite leaves alone
            }
            let Some(raw) = buffers.get(buffer).data() else { continue };
            let raw = raw.bytes();
            if raw.len() % 2 != 0 {
                anyhow::bail!("fp16 tensor {src} holds an odd number of bytes ({})", raw.len());
            }
            let data = raw
                .chunks_exact(2)
                .flat_map(|h| f16::from_le_bytes([h[0], h[1]]).to_f32().to_le_bytes())
                .collect();
            folds.push(Fold { subgraph: g, operator: o, tensor: dst, data });
        }
    }
    Ok(folds)
}

/// Where an object of the original file sits in the new buffer, as a builder offset.
struct Original {
    /// Builder offset (distance from the end) of the first byte of the embedded original.
    start: u32,
    base: *const u8,
}

impl Original {
    fn at<T>(&self, loc: usize) -> WIPOffset<T> {
        WIPOffset::new(self.start - loc as u32)
    }
    fn table<T>(&self, table: &flatbuffers::Table) -> WIPOffset<T> {
        self.at(table.loc())
    }
    fn vector<T, U>(&self, v: flatbuffers::Vector<U>) -> WIPOffset<T> {
        // A vector's location is its u32 length, just before its first element.
        self.at(v.bytes().as_ptr() as usize - self.base as usize - 4)
    }
    fn string<'a>(&self, s: &str) -> WIPOffset<&'a str> {
        self.at(s.as_ptr() as usize - self.base as usize - 4)
    }
}

fn rewrite(bytes: &[u8], model: &tflite::Model, folds: &[Fold]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(bytes.len() + folds.len() * 64);
    // Embedded as 8-byte words so the original keeps the 8-byte alignment its scalars need.
    let words: Vec<u64> = bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect();
    let embedded = fbb.create_vector(&words);
    let orig = Original { start: embedded.value() - 4, base: bytes.as_ptr() };

    let old_buffers = model.buffers().expect("checked by find_folds");
    let mut buffers: Vec<WIPOffset<tflite::Buffer>> =
        old_buffers.iter().map(|b| orig.table(&b._tab)).collect();
    let mut new_buffer_of_tensor = std::collections::HashMap::new();
    for fold in folds {
        let data = fbb.create_vector(&fold.data);
        let buffer = tflite::Buffer::create(&mut fbb, &tflite::BufferArgs { data: Some(data) });
        new_buffer_of_tensor.insert((fold.subgraph, fold.tensor), buffers.len() as u32);
        buffers.push(buffer);
    }
    let buffers = fbb.create_vector(&buffers);

    let mut subgraphs = vec![];
    for (g, graph) in model.subgraphs().into_iter().flatten().enumerate() {
        let tensors = graph.tensors().map(|tensors| {
            let list: Vec<WIPOffset<tflite::Tensor>> = tensors
                .iter()
                .enumerate()
                .map(|(t, tensor)| match new_buffer_of_tensor.get(&(g, t)) {
                    None => orig.table(&tensor._tab),
                    Some(&buffer) => {
                        let args = tflite::TensorArgs {
                            shape: tensor.shape().map(|v| orig.vector(v)),
                            type_: tflite::TensorType::FLOAT32,
                            buffer,
                            name: tensor.name().map(|s| orig.string(s)),
                            quantization: None,
                            is_variable: false,
                            sparsity: None,
                            shape_signature: tensor.shape_signature().map(|v| orig.vector(v)),
                            has_rank: tensor.has_rank(),
                            variant_tensors: None,
                        };
                        tflite::Tensor::create(&mut fbb, &args)
                    }
                })
                .collect();
            fbb.create_vector(&list)
        });
        let operators = graph.operators().map(|ops| {
            let kept: Vec<WIPOffset<tflite::Operator>> = ops
                .iter()
                .enumerate()
                .filter(|(o, _)| !folds.iter().any(|f| f.subgraph == g && f.operator == *o))
                .map(|(_, op)| orig.table(&op._tab))
                .collect();
            fbb.create_vector(&kept)
        });
        let args = tflite::SubGraphArgs {
            tensors,
            inputs: graph.inputs().map(|v| orig.vector(v)),
            outputs: graph.outputs().map(|v| orig.vector(v)),
            operators,
            name: graph.name().map(|s| orig.string(s)),
        };
        subgraphs.push(tflite::SubGraph::create(&mut fbb, &args));
    }
    let subgraphs = fbb.create_vector(&subgraphs);

    let args = tflite::ModelArgs {
        version: model.version(),
        operator_codes: model.operator_codes().map(|v| orig.vector(v)),
        subgraphs: Some(subgraphs),
        description: model.description().map(|s| orig.string(s)),
        buffers: Some(buffers),
        metadata_buffer: model.metadata_buffer().map(|v| orig.vector(v)),
        metadata: model.metadata().map(|v| orig.vector(v)),
        signature_defs: model.signature_defs().map(|v| orig.vector(v)),
    };
    let root = tflite::Model::create(&mut fbb, &args);
    fbb.finish(root, Some("TFL3"));
    fbb.finished_data().to_vec()
}
