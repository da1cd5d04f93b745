//! Helpers of the edge and trainer tests and benches, defined once: the photos and models fetched
//! by `models/fetch`, scratch folders, a small real classifier written as ONNX with a plain Rust
//! reference of the same network (to check that `edge` preprocesses and runs it correctly), a
//! MobileNetV3-Small with made-up weights (for timing), small files claiming huge images (`bombs`),
//! a Mosquitto broker and subscriber for the MQTT tests, and an HTTP client for `edge serve`. A
//! dev-dependency only: nothing here ships.

pub mod bombs;
pub mod http;
pub mod mobilenet;
pub mod mqtt;

use edge::infer::onnx::value_info as onnx_value_info;
pub use edge::infer::onnx::{fixed, float, int, ints, node, tensor};
use image::RgbImage;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tract_onnx::pb;

/// A fresh folder for one test, removed when dropped (also when the test fails).
pub struct Scratch(PathBuf);

impl Scratch {
    /// `<temp>/deepfake-edge-<pid>-<n>-<name>`: distinct for every process and every call, so
    /// tests running in parallel (or twice) never share a folder.
    pub fn new(name: &str) -> Scratch {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("deepfake-edge-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// Writes `contents` to `name` in the folder and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `command` to its end and returns its output; kills it and panics if it is still running
/// after `limit`. For inputs that once made a program run forever: a hang guard, not a speed check.
pub fn output_within(mut command: std::process::Command, limit: Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child =
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the program starts");
    // Both pipes are drained while the program runs, so a full pipe cannot stall it.
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = vec![];
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// The workspace root (this crate is `edge/testkit`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("workspace root").to_path_buf()
}

/// A test photo from ASSETS.md, fetched by `models/fetch`.
pub fn photo(name: &str) -> PathBuf {
    let path = root().join("edge/tests/data").join(name);
    assert!(path.is_file(), "{} is missing: run models/fetch first", path.display());
    path
}

/// A model file fetched by `models/fetch`.
pub fn model(name: &str) -> PathBuf {
    let path = root().join("models").join(name);
    assert!(path.is_file(), "{} is missing: run models/fetch first", path.display());
    path
}

/// The test classifier: Conv 3→4 (3×3, stride 2, pad 1) → Relu → GlobalAveragePool → Gemm 4→1 →
/// Sigmoid, on NCHW input normalised with ImageNet mean and std. Its weights are fixed edge and
/// colour filters, so p(FAKE) varies with the face crop.
pub struct TestNet {
    pub size: u32,
    /// [out][in][ky][kx]
    pub conv_w: [[[[f32; 3]; 3]; 3]; 4],
    pub conv_b: [f32; 4],
    pub fc_w: [f32; 4],
    pub fc_b: f32,
}

pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

impl TestNet {
    pub fn new(size: u32) -> TestNet {
        let mut conv_w = [[[[0.0; 3]; 3]; 3]; 4];
        for (o, filter) in conv_w.iter_mut().enumerate() {
            for (c, plane) in filter.iter_mut().enumerate() {
                for (y, row) in plane.iter_mut().enumerate() {
                    for (x, w) in row.iter_mut().enumerate() {
                        let (dx, dy) = (x as f32 - 1.0, y as f32 - 1.0);
                        *w = match o {
                            0 => dx * 0.3, // horizontal gradient
                            1 => dy * 0.3, // vertical gradient
                            2 => {
                                if (x, y) == (1, 1) {
                                    0.4
                                } else {
                                    -0.05
                                }
                            } // sharpness
                            _ => [0.2, -0.1, -0.1][c] / 3.0, // redness
                        } * if o < 3 { 1.0 / 3.0 } else { 1.0 };
                    }
                }
            }
        }
        TestNet {
            size,
            conv_w,
            conv_b: [0.05, -0.02, 0.01, 0.1],
            fc_w: [1.5, -1.2, 2.0, 0.8],
            fc_b: -0.3,
        }
    }

    /// p(FAKE) computed directly from a face crop, independently of tract.
    pub fn reference_p_fake(&self, crop: &RgbImage) -> f32 {
        let s = self.size as i64;
        assert_eq!(crop.dimensions(), (self.size, self.size));
        let input = |c: usize, y: i64, x: i64| -> f32 {
            if x < 0 || y < 0 || x >= s || y >= s {
                0.0
            } else {
                (crop.get_pixel(x as u32, y as u32)[c] as f32 / 255.0 - MEAN[c]) / STD[c]
            }
        };
        let out_side = (s + 2 - 3) / 2 + 1;
        let mut pooled = [0f32; 4];
        for (o, p) in pooled.iter_mut().enumerate() {
            let mut sum = 0.0;
            for oy in 0..out_side {
                for ox in 0..out_side {
                    let mut acc = self.conv_b[o];
                    for c in 0..3 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                acc += self.conv_w[o][c][ky][kx]
                                    * input(c, oy * 2 - 1 + ky as i64, ox * 2 - 1 + kx as i64);
                            }
                        }
                    }
                    sum += acc.max(0.0);
                }
            }
            *p = sum / (out_side * out_side) as f32;
        }
        let z: f32 = self.fc_b + pooled.iter().zip(&self.fc_w).map(|(p, w)| p * w).sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }

    /// The metadata JSON `edge` reads (ONNX property or sidecar).
    pub fn meta_json(&self) -> String {
        meta_json()
    }

    /// The network as an ONNX ModelProto, with the metadata in `metadata_props`.
    pub fn onnx(&self) -> Vec<u8> {
        let s = self.size as i64;
        let conv_w: Vec<f32> = self.conv_w.iter().flatten().flatten().flatten().copied().collect();
        let graph = pb::GraphProto {
            name: "test_classifier".into(),
            node: vec![
                node(
                    "Conv",
                    &["image", "conv_w", "conv_b"],
                    "conv",
                    vec![
                        ints("kernel_shape", &[3, 3]),
                        ints("strides", &[2, 2]),
                        ints("pads", &[1, 1, 1, 1]),
                    ],
                ),
                node("Relu", &["conv"], "relu", vec![]),
                node("GlobalAveragePool", &["relu"], "gap", vec![]),
                node("Flatten", &["gap"], "flat", vec![]),
                node("Gemm", &["flat", "fc_w", "fc_b"], "logit", vec![int("transB", 1)]),
                node("Sigmoid", &["logit"], "p_fake", vec![]),
            ],
            initializer: vec![
                tensor("conv_w", &[4, 3, 3, 3], &conv_w),
                tensor("conv_b", &[4], &self.conv_b),
                tensor("fc_w", &[1, 4], &self.fc_w),
                tensor("fc_b", &[1], &[self.fc_b]),
            ],
            input: vec![value_info("image", &[1, 3, s, s])],
            output: vec![value_info("p_fake", &[1, 1])],
            ..Default::default()
        };
        model_proto(graph, 13)
    }

    /// The same model with a symbolic batch dimension `N`, as PyTorch and Keras exports have.
    pub fn onnx_symbolic_batch(&self) -> Vec<u8> {
        use pb::tensor_shape_proto::dimension::Value;
        let mut model = pb::ModelProto::decode(&*self.onnx()).expect("own model decodes");
        let graph = model.graph.as_mut().expect("graph");
        for info in graph.input.iter_mut().chain(graph.output.iter_mut()) {
            if let Some(pb::type_proto::Value::TensorType(t)) =
                info.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                if let Some(dim) = t.shape.as_mut().and_then(|s| s.dim.first_mut()) {
                    dim.value = Some(Value::DimParam("N".into()));
                }
            }
        }
        model.encode_to_vec()
    }

    /// Writes `classifier.onnx` into `dir` and returns its path.
    pub fn write_onnx(&self, dir: &Path) -> PathBuf {
        let path = dir.join("classifier.onnx");
        std::fs::write(&path, self.onnx()).expect("write test classifier");
        path
    }
}

/// The metadata of the test networks: ImageNet normalisation, one probability of FAKE.
pub fn meta_json() -> String {
    serde_json::json!({
        "labels": ["REAL", "FAKE"], "mean": MEAN, "std": STD, "output": "probability", "threshold": 0.5
    })
    .to_string()
}

/// A serialised ONNX model of `graph`, carrying [`meta_json`] in `metadata_props`.
pub fn model_proto(graph: pb::GraphProto, opset: i64) -> Vec<u8> {
    edge::infer::onnx::model(graph, opset, "deepfake-edge tests", &meta_json())
}

/// A graph input or output of a fixed shape.
pub fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    onnx_value_info(name, &fixed(dims))
}
