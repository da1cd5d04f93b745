//! The burn backend and device a training runs on: Flex on the CPU by default, NdArray, or a GPU
//! through wgpu (cargo features).

use anyhow::{anyhow, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The backends the trainer can run on. Every name parses in every build, so that a run folder
/// made by another build still reads; a backend this build lacks fails when its device is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's pure-Rust CPU backend (about 9× faster than NdArray here).
    #[default]
    Flex,
    /// burn's NdArray CPU backend (deprecated by burn; built with `--features ndarray`).
    Ndarray,
    /// burn's wgpu backend: a GPU through Vulkan, Metal or DirectX 12 (built with
    /// `--features wgpu`); `--device` picks the adapter.
    Wgpu,
}

impl Backend {
    /// The device (without autodiff) of this backend; `adapter` picks the GPU of GPU backends.
    pub fn device(self, adapter: Adapter) -> Result<Device> {
        if self != Backend::Wgpu && adapter != Adapter::Default {
            anyhow::bail!("--device {adapter} needs a GPU backend (--backend wgpu)");
        }
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(not(feature = "ndarray"))]
            Backend::Ndarray => anyhow::bail!(
                "this trainer was built without NdArray: rebuild with `--features ndarray`"
            ),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => wgpu_device(adapter),
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => {
                anyhow::bail!("this trainer was built without wgpu: rebuild with `--features wgpu`")
            }
        }
    }
}

/// Which adapter a GPU backend runs on: `default` (wgpu's choice, a high-performance GPU first),
/// `discrete`, `integrated` or `virtual` with an optional `:N` (the N-th adapter of that kind,
/// from 0), or `cpu` (a software adapter such as Mesa's lavapipe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Adapter {
    #[default]
    Default,
    Discrete(usize),
    Integrated(usize),
    Virtual(usize),
    Cpu,
}

impl std::str::FromStr for Adapter {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (kind, index) = match s.split_once(':') {
            Some((kind, n)) => (
                kind,
                Some(n.parse::<usize>().map_err(|_| {
                    anyhow!("adapter `{s}`: `{n}` is not an adapter number (0, 1, …)")
                })?),
            ),
            None => (s, None),
        };
        let n = index.unwrap_or(0);
        match kind {
            "default" if index.is_none() => Ok(Adapter::Default),
            "cpu" if index.is_none() => Ok(Adapter::Cpu),
            "discrete" => Ok(Adapter::Discrete(n)),
            "integrated" => Ok(Adapter::Integrated(n)),
            "virtual" => Ok(Adapter::Virtual(n)),
            _ => anyhow::bail!(
                "adapter `{s}`: expected default, cpu, discrete[:N], integrated[:N] or virtual[:N]"
            ),
        }
    }
}

impl std::fmt::Display for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Adapter::Default => write!(f, "default"),
            Adapter::Cpu => write!(f, "cpu"),
            Adapter::Discrete(n) => write!(f, "discrete:{n}"),
            Adapter::Integrated(n) => write!(f, "integrated:{n}"),
            Adapter::Virtual(n) => write!(f, "virtual:{n}"),
        }
    }
}

impl TryFrom<String> for Adapter {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Adapter> for String {
    fn from(a: Adapter) -> String {
        a.to_string()
    }
}

/// The wgpu device on `adapter`, set up once per process (burn refuses a second set-up of one
/// adapter, so later runs in the same process reuse the first).
#[cfg(feature = "wgpu")]
fn wgpu_device(adapter: Adapter) -> Result<Device> {
    use burn::tensor::DeviceKind;
    use std::sync::Mutex;
    static READY: Mutex<Vec<(Adapter, Device)>> = Mutex::new(Vec::new());
    let mut ready = READY.lock().map_err(|_| anyhow!("wgpu: a set-up panicked earlier"))?;
    if let Some((_, device)) = ready.iter().find(|(a, _)| *a == adapter) {
        return Ok(device.clone());
    }
    let kind = match adapter {
        Adapter::Default => DeviceKind::DefaultDevice,
        Adapter::Cpu => DeviceKind::Cpu,
        Adapter::Discrete(n) => DeviceKind::DiscreteGpu(n),
        Adapter::Integrated(n) => DeviceKind::IntegratedGpu(n),
        Adapter::Virtual(n) => DeviceKind::VirtualGpu(n),
    };
    let device = Device::wgpu_options().device_kind(kind).init().map_err(|e| {
        anyhow!(
            "wgpu: no usable adapter for --device {adapter}: {}",
            e.to_string().replace('\n', " ")
        )
    })?;
    ready.push((adapter, device.clone()));
    Ok(device)
}
