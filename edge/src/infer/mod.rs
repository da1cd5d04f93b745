//! The models through tract: loading and optimising them (`model`, with `tflite_fp16` and the
//! depthwise `kernels` added to tract's), BlazeFace detection, the face crop, the REAL/FAKE
//! classifier, the two chained (`pipeline`), a classifier's threshold set on a site's real
//! faces (`calibrate`), timing them (`bench`), the default model file names
//! (`model_files`), and writing ONNX (`onnx`, for the trainer's export and the tests' models).

pub mod bench;
pub mod calibrate;
pub mod classify;
pub mod crop;
pub mod detect;
pub mod kernels;
pub mod model;
pub mod model_files;
pub mod onnx;
pub mod pipeline;
pub mod tflite_fp16;
