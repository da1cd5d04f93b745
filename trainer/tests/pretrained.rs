//! The torchvision checkpoint loader, on the real file (fetched by models/fetch): loaded into our
//! MobileNetV2 with its 1000-class ImageNet head, it must recognise real photos the way
//! torchvision's model does.

use burn::prelude::*;
use edge::classify::{normalise, Label, ModelMeta, OutputKind};
use std::path::{Path, PathBuf};
use trainer::mobilenet_v2::{load_torchvision, MobileNetV2};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn fetched(path: &str) -> PathBuf {
    let p = root().join(path);
    assert!(p.is_file(), "{} is missing: run models/fetch first", p.display());
    p
}

/// The five most likely ImageNet classes of a photo (centre square at 224, ImageNet normalisation).
fn top5(model: &MobileNetV2, photo: &str, device: &Device) -> Vec<usize> {
    let img = edge::decode::open(&fetched(photo)).expect("decodes");
    let crop = trainer::faces::centre_crop(&img, 224);
    let meta = ModelMeta {
        labels: [Label::Real, Label::Fake],
        mean: trainer::run::MEAN,
        std: trainer::run::STD,
        output: OutputKind::Logit,
        threshold: 0.5,
    };
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
