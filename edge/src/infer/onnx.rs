//! Writing ONNX models with tract-onnx's protobuf types: the nodes, attributes, weights and
//! shapes the trainer's export and the tests' hand-built models are made of, and the model with
//! its metadata under [`META_KEY`], the property [`super::classify::Classifier`] reads.

use super::classify::META_KEY;
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::Dimension;

/// One dimension of a shape: `Dim::DimValue(3)` or a symbol, `Dim::DimParam("N".into())`.
pub use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;

/// A node computing `output` (also its name) from `inputs`.
pub fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

pub fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

pub fn float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// An f32 weight tensor (little-endian raw data).
pub fn tensor(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A fixed shape, as [`value_info`] takes it.
pub fn fixed(dims: &[i64]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::DimValue(d)).collect()
}

/// A graph input or output: an f32 tensor of this shape.
pub fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    let shape = pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension { value: Some(d.clone()), ..Default::default() })
            .collect(),
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The serialised model: `graph` at the default-domain `opset`, with `meta` (the metadata JSON)
/// under [`META_KEY`].
pub fn model(graph: pb::GraphProto, opset: i64, producer: &str, meta: &str) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: producer.into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: vec![pb::StringStringEntryProto {
            key: META_KEY.into(),
            value: meta.into(),
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

/// The serialised model `onnx` with its metadata (under [`META_KEY`]) replaced by `meta`, or added;
/// everything else is kept as it was. Fails when `onnx` is not an ONNX model.
pub fn with_meta(onnx: &[u8], meta: &str) -> anyhow::Result<Vec<u8>> {
    let mut model =
        pb::ModelProto::decode(onnx).map_err(|e| anyhow::anyhow!("not an ONNX model: {e}"))?;
    anyhow::ensure!(model.graph.is_some(), "not an ONNX model: no graph");
    model.metadata_props.retain(|p| p.key != META_KEY);
    model
        .metadata_props
        .push(pb::StringStringEntryProto { key: META_KEY.into(), value: meta.into() });
    Ok(model.encode_to_vec())
}
