//! Reading torchvision's ImageNet checkpoints (`.pth`, PyTorch's zip or legacy format) by
//! torchvision's tensor names, for the MobileNet loaders.

use super::layers::ConvBn;
use anyhow::{anyhow, bail, ensure, Context, Result};
use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::prelude::*;
use burn::store::pytorch::PytorchReader;
use burn::store::pytorch_reader::DType;
use burn::tensor::TensorData;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The float tensors of a torchvision checkpoint, taken by name.
pub(crate) struct Checkpoint {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Checkpoint {
    pub(crate) fn open(path: &Path) -> Result<Checkpoint> {
        let context = || format!("checkpoint {}", path.display());
        let reader = PytorchReader::new(path).map_err(|e| anyhow!("{e}")).with_context(context)?;
        let mut tensors = HashMap::new();
        for (name, t) in reader.tensors() {
            // Batch norms' num_batches_tracked counters (int64) play no part in the model.
            if t.dtype() != DType::F32 {
                continue;
            }
            let bytes = t.read().with_context(|| format!("tensor {name}")).with_context(context)?;
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name.clone(), (t.shape().to_vec(), values));
        }
        Ok(Checkpoint { path: path.to_path_buf(), tensors })
    }

    pub(crate) fn take<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let Some((got, values)) = self.tensors.remove(name) else {
            bail!("checkpoint {} has no tensor {name}", self.path.display())
        };
        ensure!(
            got == shape,
            "checkpoint {}: {name} has shape {got:?}, the model needs {shape:?}",
            self.path.display()
        );
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// torchvision's `Conv2dNormActivation`: the convolution at `conv`, its batch norm at `bn`.
    pub(crate) fn conv_bn(
        &mut self,
        layer: ConvBn,
        conv: &str,
        bn: &str,
        device: &Device,
    ) -> Result<ConvBn> {
        let mut layer = layer;
        layer.conv.weight = Param::from_tensor(self.take(
            &format!("{conv}.weight"),
            layer.conv.weight.dims(),
            device,
        )?);
        let c = layer.bn.gamma.dims();
        layer.bn.gamma = Param::from_tensor(self.take(&format!("{bn}.weight"), c, device)?);
        layer.bn.beta = Param::from_tensor(self.take(&format!("{bn}.bias"), c, device)?);
        layer.bn.running_mean =
            RunningState::new(self.take(&format!("{bn}.running_mean"), c, device)?);
        layer.bn.running_var =
            RunningState::new(self.take(&format!("{bn}.running_var"), c, device)?);
        Ok(layer)
    }

    /// A convolution with a bias (squeeze-excite's `fc1`, `fc2`).
    pub(crate) fn conv(&mut self, layer: Conv2d, name: &str, device: &Device) -> Result<Conv2d> {
        let mut layer = layer;
        let shape = layer.weight.dims();
        layer.weight = Param::from_tensor(self.take(&format!("{name}.weight"), shape, device)?);
        layer.bias =
            Some(Param::from_tensor(self.take(&format!("{name}.bias"), [shape[0]], device)?));
        Ok(layer)
    }

    /// A linear layer; torchvision stores its weight as [out, in], burn as [in, out].
    pub(crate) fn linear(&mut self, layer: Linear, name: &str, device: &Device) -> Result<Linear> {
        let mut layer = layer;
        let [cin, cout] = layer.weight.dims();
        let w = self.take(&format!("{name}.weight"), [cout, cin], device)?.transpose();
        layer.weight = Param::from_tensor(w);
        layer.bias =
            Some(Param::from_tensor(self.take(&format!("{name}.bias"), [cout], device)?));
        Ok(layer)
    }

    /// Fails when tensors other than those under `unused` were left: the checkpoint is of
    /// another architecture than the model.
    pub(crate) fn finish(self, unused: &str) -> Result<()> {
        let mut left: Vec<&String> =
            self.tensors.keys().filter(|name| !name.starts_with(unused)).collect();
        left.sort();
        ensure!(
            left.is_empty(),
            "checkpoint {} has tensors the model lacks ({}): not the same architecture",
            self.path.display(),
            left.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        Ok(())
    }
}
