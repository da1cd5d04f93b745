//! The torchvision checkpoint loader, on the real file (fetched by models/fetch): loaded into our
//! MobileNetV2 with its 1000-class ImageNet head, it must recognise real photos the way
//! torchvision's model does.

use burn::prelude::*;
use edge::infer::classify::{normalise, ModelMeta, OutputKind};
use std::path::{Path, PathBuf};
use trainer::nets::mobilenet_v2::{load_torchvision, MobileNetV2};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn fetched(path: &str) -> PathBuf {
    let p = root().join(path);
    assert!(p.is_file(), "{} is missing: run models/fetch first", p.display());
    p
}

/// The trainer's normalisation, with `output` as the network gives it.
fn meta(output: OutputKind) -> ModelMeta {
    ModelMeta { output, ..trainer::run::model_meta() }
}

/// The five most likely ImageNet classes of a photo (centre square at 224, ImageNet normalisation).
fn top5(model: &MobileNetV2, photo: &str, device: &Device) -> Vec<usize> {
    let img = edge::input::decode::open(&fetched(photo)).expect("decodes");
    let crop = trainer::data::faces::centre_crop(&img, 224);
    let meta = meta(OutputKind::Logit);
    let mut data = vec![];
    normalise(&crop, &meta, true, &mut data);
    let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(data, [1, 3, 224, 224]), device);
    let logits: Vec<f32> = model.forward(x).into_data().try_to_vec().expect("f32 logits");
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(5);
    order
}

#[test]
fn torchvision_mobilenet_v2_weights_recognise_a_cat_and_a_coffee_cup() {
    let device = Device::flex();
    let model = MobileNetV2::new(1000, &device);
    let model = load_torchvision(model, &fetched("models/mobilenet_v2-b0353104.pth"), &device)
        .expect("checkpoint loads")
        .valid();
    // ImageNet classes 281–285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
    let cat = top5(&model, "edge/tests/data/chelsea.png", &device);
    assert!((281..=285).contains(&cat[0]), "chelsea.png top 5: {cat:?}");
    // 967 espresso, 968 cup, 504 coffee mug.
    let coffee = top5(&model, "edge/tests/data/coffee.png", &device);
    assert!(coffee.iter().any(|c| [967, 968, 504].contains(c)), "coffee.png top 5: {coffee:?}");
}

#[test]
fn a_file_that_is_not_a_checkpoint_fails_naming_it() {
    // Our own V2 with a REAL/FAKE head loads the backbone and keeps its head; a wrong file fails.
    let device = Device::flex();
    let err = load_torchvision(
        MobileNetV2::new(1, &device),
        &fetched("edge/tests/data/coffee.png"),
        &device,
    )
    .expect_err("a PNG is not a checkpoint");
    assert!(format!("{err:#}").contains("coffee.png"), "{err:#}");
}

/// The values `torchvision_checkpoint.py` writes into its tensor number `id`.
fn written(id: u64, len: usize) -> Vec<f32> {
    (0..len).map(|k| id as f32 + (k % 1000) as f32 / 1024.0).collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec().expect("f32 tensor")
}

#[test]
fn torchvision_mobilenet_v3_small_checkpoint_layout_loads_into_our_model() {
    use trainer::nets::mobilenet_v3::{load_torchvision, MobileNetV3};
    // The real mobilenet_v3_small-047dcff4.pth is not reachable from here; this file has its
    // tensor names, shapes and dtypes and torch.save's zip layout, with known values.
    let path = std::env::temp_dir().join(format!("mobilenet_v3_small-{}.pth", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torchvision_checkpoint.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: std::collections::HashMap<String, u64> =
        serde_json::from_slice(&out.stdout).expect("tensor ids");
    let id = |name: &str| *ids.get(name).unwrap_or_else(|| panic!("no {name} written"));

    let device = Device::flex();
    let fresh = MobileNetV3::new(&device);
    let head_before = values(fresh.head.weight.val());
    let m = load_torchvision(fresh, &path, &device).expect("checkpoint loads");
    let _ = std::fs::remove_file(&path);

    let check = |got: Vec<f32>, name: &str| {
        assert_eq!(got, written(id(name), got.len()), "{name}");
    };
    check(values(m.stem.conv.weight.val()), "features.0.0.weight");
    // features.4: 24 → 96 channels, 5×5 depthwise, squeeze-excite to 24, project to 40.
    let b = &m.blocks[3];
    let expand = b.expand.as_ref().expect("block 4 expands");
    check(values(expand.conv.weight.val()), "features.4.block.0.0.weight");
    assert_eq!(b.depthwise.conv.weight.dims(), [96, 1, 5, 5]);
    check(values(b.depthwise.conv.weight.val()), "features.4.block.1.0.weight");
    check(values(b.depthwise.bn.gamma.val()), "features.4.block.1.1.weight");
    check(values(b.depthwise.bn.beta.val()), "features.4.block.1.1.bias");
    check(values(b.depthwise.bn.running_mean.value()), "features.4.block.1.1.running_mean");
    check(values(b.depthwise.bn.running_var.value()), "features.4.block.1.1.running_var");
    let se = b.se.as_ref().expect("block 4 has squeeze-excite");
    assert_eq!(se.reduce.weight.dims(), [24, 96, 1, 1]);
    check(values(se.reduce.weight.val()), "features.4.block.2.fc1.weight");
    check(values(se.reduce.bias.as_ref().expect("bias").val()), "features.4.block.2.fc1.bias");
    check(values(se.expand.weight.val()), "features.4.block.2.fc2.weight");
    check(values(b.project.conv.weight.val()), "features.4.block.3.0.weight");
    // features.1 has no expansion: depthwise at block.0, squeeze-excite at block.1.
    let b = &m.blocks[0];
    assert!(b.expand.is_none());
    check(values(b.depthwise.conv.weight.val()), "features.1.block.0.0.weight");
    check(values(b.se.as_ref().expect("se").expand.weight.val()), "features.1.block.1.fc2.weight");
    check(values(b.project.bn.running_var.value()), "features.1.block.2.1.running_var");
    check(values(m.last.bn.running_mean.value()), "features.12.1.running_mean");
    // torchvision's Linear weight is [out, in], burn's [in, out].
    check(values(m.hidden.weight.val().transpose()), "classifier.0.weight");
    check(values(m.hidden.bias.as_ref().expect("bias").val()), "classifier.0.bias");
    // The ImageNet output layer is not loaded: the REAL/FAKE head stays as it was.
    assert_eq!(m.head.weight.dims(), [1024, 1]);
    assert_eq!(values(m.head.weight.val()), head_before);
    // torchvision's ε, which the ImageNet statistics were computed with.
    assert_eq!(m.stem.bn.epsilon, 1e-3);
}

#[test]
fn a_checkpoint_of_another_architecture_fails_naming_file_and_tensor() {
    let device = Device::flex();
    let v2 = fetched("models/mobilenet_v2-b0353104.pth");
    let err = trainer::nets::mobilenet_v3::load_torchvision(
        trainer::nets::mobilenet_v3::MobileNetV3::new(&device),
        &v2,
        &device,
    )
    .expect_err("MobileNetV2 weights do not fit MobileNetV3");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("mobilenet_v2-b0353104.pth") && msg.contains("features.0.0.weight"),
        "{msg}"
    );
}

/// `--high-pass`: MobileNetV2's second stem on the image's high-pass residual starts silent (the
/// pretrained network's very logits), and once it speaks, the exported ONNX and TFLite give
/// burn's p(FAKE) on real photos, as `edge` loads them.
#[test]
fn the_high_pass_stem_starts_silent_and_exports_as_burn_computes_it() {
    use trainer::train::fit::batch;
    let device = Device::flex();
    let weights = fetched("models/mobilenet_v2-b0353104.pth");
    let start = MobileNetV2::with_high_pass(1, &device);
    let net = load_torchvision(start, &weights, &device).expect("loads");
    let plain = MobileNetV2 { high_pass: None, ..net.clone() };
    let meta = meta(OutputKind::Probability);
    let faces: Vec<_> = ["lenna.png", "einstein.jpg", "takeo.ppm"]
        .map(|name| {
            let img = edge::input::decode::open(&crate::support::photo(name)).expect("decodes");
            trainer::data::faces::centre_crop(&img, 96)
        })
        .into();
    let p_fake = |m: &MobileNetV2| -> Vec<f32> {
        let logits = m.forward(batch(&faces, &meta, &device));
        let p = burn::tensor::activation::sigmoid(logits).into_data();
        p.try_to_vec::<f32>().expect("f32")
    };
    assert_eq!(p_fake(&net), p_fake(&plain));

    let mut net = net;
    let branch = net.high_pass.as_mut().expect("the second stem");
    branch.bn.gamma = burn::module::Param::from_tensor(Tensor::ones([32], &device));
    let (speaking, silent) = (p_fake(&net), p_fake(&plain));
    let moved = speaking.iter().zip(&silent).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 1e-3, "the stem changed p(FAKE) by {moved} only");

    let tmp = crate::support::Scratch::new("trainer-high-pass");
    let onnx = trainer::export::onnx::write(&trainer::nets::Net::V2(net), 96, &meta).expect("ONNX");
    let tflite = trainer::export::tflite::write(&onnx).expect("TFLite");
    // TFLite has no metadata of ours: edge reads it beside the file, as a run writes it.
    let json = serde_json::to_string(&meta).expect("JSON");
    std::fs::write(tmp.join("model.json"), json).expect("writes");
    for (name, bytes) in [("model.onnx", onnx), ("model.tflite", tflite)] {
        std::fs::write(tmp.join(name), bytes).expect("writes");
        let classifier = edge::infer::classify::Classifier::load(&tmp.join(name)).expect("loads");
        for (face, &expected) in faces.iter().zip(&speaking) {
            let p = classifier.p_fake(face).expect("classifies");
            assert!((p - expected).abs() <= 1e-5, "{name}: {p} against burn's {expected}");
        }
    }
}
