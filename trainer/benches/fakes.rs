//! `cargo bench -p trainer --bench fakes`: the time each kind of fake takes to make, per fake, on
//! the real faces of t1.jpg, astronaut.png and einstein.jpg cut at 160 px (the default model's
//! input) as training cuts them; and the one-off training of the reconstructors and denoisers.
//! The kinds take turns round by round, so a busy machine slows them alike; the table gives each
//! kind's median against the self-blend's, measured in the same rounds.

use anyhow::{bail, Result};
use image::RgbImage;
use rand::SeedableRng;
use std::time::Instant;
use trainer::data::faces::{Cropped, Cropper, FaceCrop, NoFace};
use trainer::data::folders;
use trainer::fakes::kind::{FakeKind, FakeSettings, Sources};

const SIZE: u32 = 160;
const KINDS: [FakeKind; 5] =
    [FakeKind::Sbi, FakeKind::Upsample, FakeKind::Swap, FakeKind::Reconstruct, FakeKind::Denoise];

fn faces() -> Result<Vec<FaceCrop>> {
    let dir =
        std::env::temp_dir().join(format!("deepfake-edge-bench-fakes-{}", std::process::id()));
    let real = dir.join("data/real");
    std::fs::create_dir_all(&real)?;
    for name in ["t1.jpg", "astronaut.png", "einstein.jpg"] {
        std::fs::copy(testkit::photo(name), real.join(name))?;
    }
    let detector = testkit::root().join("models/face_detection_full_range.tflite");
    let margin = edge::infer::crop::DEFAULT_MARGIN;
    let cropper = Cropper::open(&detector, 0.5, margin, SIZE, NoFace::Skip, &dir.join("cache"))?;
    let mut faces = vec![];
    for sample in folders::scan(&[dir.join("data")])?.samples {
        if let Cropped::Faces(found) = cropper.crop(&sample)? {
            faces.extend(found);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if faces.is_empty() {
        bail!("no face found: run models/fetch first");
    }
    Ok(faces)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let rounds: usize =
        std::env::var("TRAINER_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let faces = faces()?;
    let start = Instant::now();
    let sources = Sources::new(
        &KINDS,
        faces.iter().map(|f| (&f.image, f.keypoints.as_ref())),
        1,
        None,
        |_| {},
    )?;
    let generators = start.elapsed().as_secs_f64();
    let settings = FakeSettings { sbi_strength: 1.0 };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    // Per kind, the mean ms per fake of each round (one fake of every face).
    let mut ms: Vec<Vec<f64>> = vec![vec![]; KINDS.len()];
    for _ in 0..rounds {
        for (k, kind) in KINDS.iter().enumerate() {
            let t = Instant::now();
            for face in &faces {
                let fake: RgbImage =
                    kind.make(&face.image, face.keypoints.as_ref(), &sources, &settings, &mut rng)?;
                std::hint::black_box(fake);
            }
            ms[k].push(t.elapsed().as_secs_f64() * 1e3 / faces.len() as f64);
        }
    }
    let base = median(ms[0].clone());
    println!(
        "| kind | ms per fake (median of {rounds} rounds of {} faces, {SIZE} px) | ÷ sbi |",
        faces.len()
    );
    println!("| --- | ---: | ---: |");
    for (kind, ms) in KINDS.iter().zip(ms) {
        let m = median(ms);
        println!("| {} | {m:.1} | {:.2} |", kind.name(), m / base);
    }
    println!(
        "\nthe generators of reconstruct and denoise: trained once per run in {generators:.1} s"
    );
    Ok(())
}
