//! `trainer fakes` on fetched photos: the real crops, their self-blends (changed only inside the
//! face) and up-sampling traces (sharpness kept) as a labelled folder, the same for the same seed;
//! then `trainer eval --crops` scores that folder with the default classifier as edge's
//! classifier scores each crop.

use crate::eval::read_csv;
use crate::support::{bare_trainer, root, run_folder_with};
use image::RgbImage;
use std::path::{Path, PathBuf};
use trainer::eval::shortcuts::Cues;

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn rgb(path: &Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_rgb8()
}

/// Mean absolute difference of two images over the pixels where `inside` holds.
fn mean_diff(a: &RgbImage, b: &RgbImage, inside: impl Fn(u32, u32) -> bool) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (x, y, p) in a.enumerate_pixels() {
        if inside(x, y) {
            let q = b.get_pixel(x, y);
            sum += (0..3).map(|c| (p[c] as f64 - q[c] as f64).abs()).sum::<f64>() / 3.0;
            n += 1;
        }
    }
    sum / n as f64
}

#[test]
fn fakes_are_written_beside_their_sources_and_eval_scores_them_as_crops() {
    // t1.jpg has six faces, astronaut.png and einstein.jpg one each, coffee.png none.
    let tmp = run_folder_with(
        "trainer-fakes",
        &["t1.jpg", "astronaut.png", "einstein.jpg", "coffee.png"],
    );
    let write = |out: &Path| {
        bare_trainer(
            &["fakes", "--kinds", "sbi,upsample,swap", "--per-face", "2", "--size", "128"],
            &[("--data", &tmp.join("data")), ("--out", out), ("--cache", &tmp.join("cache"))],
        )
    };
    let run = write(&tmp.join("set"));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    assert!(
        stdout
            .contains("8 real faces, fakes: 16 sbi, 16 upsample, 16 swap; 1 photos without a face"),
        "{stdout}"
    );
    assert!(stderr.contains("no face in") && stderr.contains("coffee.png"), "{stderr}");
    let real = pngs(&tmp.join("set/real"));
    let fake = pngs(&tmp.join("set/fake/sbi"));
    let upsampled = pngs(&tmp.join("set/fake/upsample"));
    let swapped = pngs(&tmp.join("set/fake/swap"));
    assert_eq!((real.len(), fake.len(), upsampled.len(), swapped.len()), (8, 16, 16, 16));

    // Each self-blend and swap is its source blended inside a face mask: the corners (outside
    // any face ellipse) are the source's pixels, the centre is changed.
    for source in &real {
        let stem = source.file_stem().and_then(|s| s.to_str()).expect("name");
        let src = rgb(source);
        assert_eq!(src.dimensions(), (128, 128));
        for i in 0..2 {
            let fake = rgb(&tmp.join(format!("set/fake/sbi/{stem}-{i}.png")));
            let corner = |x: u32, y: u32| !(12..116).contains(&x) && !(12..116).contains(&y);
            let centre = |x: u32, y: u32| (44..84).contains(&x) && (44..84).contains(&y);
            assert_eq!(mean_diff(&src, &fake, corner), 0.0, "{stem}-{i}: corners changed");
            assert!(mean_diff(&src, &fake, centre) > 0.5, "{stem}-{i}: centre unchanged");
            // A swap puts another person's inner face there: a larger change than a self-blend's.
            let swap = rgb(&tmp.join(format!("set/fake/swap/{stem}-{i}.png")));
            // Only the tail of the blurred mask reaches a corner when the face fills the crop.
            let corners = mean_diff(&src, &swap, corner);
            assert!(corners < 0.5, "{stem}-{i}: swap corners changed by {corners}");
            assert!(mean_diff(&src, &swap, centre) > 3.0, "{stem}-{i}: swap centre unchanged");
            // An up-sampling trace changes the whole crop, but not its sharpness (the Laplacian
            // variance the shortcut audit measures) nor its brightness.
            let up = rgb(&tmp.join(format!("set/fake/upsample/{stem}-{i}.png")));
            assert!(mean_diff(&src, &up, |_, _| true) > 0.5, "{stem}-{i}: upsample unchanged");
            let (a, b) = (Cues::of(&src, [0.0; 4], b""), Cues::of(&up, [0.0; 4], b""));
            let ratio = b.sharpness / a.sharpness;
            assert!((0.5..2.0).contains(&ratio), "{stem}-{i}: sharpness ×{ratio}");
            assert!((a.brightness - b.brightness).abs() < 2.0, "{stem}-{i}: {a:?} {b:?}");
        }
    }
    // The same photos and seed give the same fakes.
    let again = write(&tmp.join("again"));
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    for (kind, file) in fake.iter().map(|f| ("sbi", f)).chain(swapped.iter().map(|f| ("swap", f))) {
        let twin = tmp.join("again/fake").join(kind).join(file.file_name().expect("name"));
        assert_eq!(std::fs::read(file).expect("fake"), std::fs::read(twin).expect("twin"));
    }
    // A folder with files in it is refused, so no older fakes mix in.
    let refused = write(&tmp.join("set"));
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));

    // eval --crops: every crop is one face, scored whole as edge's classifier scores its input.
    let model = root().join("models/classifier.onnx");
    let eval = bare_trainer(
        &["eval", "--crops"],
        &[("--model", &model), ("--data", &tmp.join("set")), ("--out", &tmp.join("eval"))],
    );
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
    let summary = String::from_utf8_lossy(&eval.stdout);
    assert!(summary.contains("each image a face crop, scored whole"), "{summary}");
    let rows = read_csv(&tmp.join("eval/faces.csv"));
    assert_eq!(rows.len(), 56);
    assert_eq!(rows.iter().filter(|r| r.fake).count(), 48);
    let classifier = edge::Classifier::load(&model).expect("default classifier");
    let size = classifier.input_size();
    for row in &rows {
        let crop = trainer::data::faces::centre_crop(&rgb(&row.file), size);
        assert_eq!(classifier.p_fake(&crop).expect("p_fake"), row.p_fake, "{}", row.file.display());
        assert_eq!(row.face, 0);
    }
    // No detection: each face's box is the whole crop.
    let csv = std::fs::read_to_string(tmp.join("eval/faces.csv")).expect("faces.csv");
    assert!(csv.lines().skip(1).all(|l| l.contains(",0.0,0.0,128.0,128.0,")), "{csv}");
}

/// Links back into a data folder and a FIFO named like a photo (issue 27, class 1): the trainer
/// reads the real photo once, names the rest as skipped, and finishes.
#[cfg(unix)]
#[test]
fn a_data_folder_with_link_loops_and_a_fifo_is_walked_once() {
    use std::os::unix::fs::symlink;
    let tmp = run_folder_with("trainer-links", &["astronaut.png"]);
    let real = tmp.join("data/real");
    symlink(".", real.join("s1")).expect("link");
    symlink("..", real.join("s2")).expect("link");
    let status = std::process::Command::new("mkfifo").arg(real.join("x.jpg")).status();
    assert!(status.is_ok_and(|s| s.success()), "mkfifo");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.env("EDGE_MODELS", root().join("models")).args(["fakes", "--kinds", "sbi"]);
    for (flag, path) in
        [("--data", tmp.join("data")), ("--out", tmp.join("set")), ("--cache", tmp.join("cache"))]
    {
        command.arg(flag).arg(path);
    }
    let out = testkit::output_within(command, std::time::Duration::from_secs(120));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(": 1 real faces, fakes: 1 sbi;"), "{stdout}");
    for skipped in ["x.jpg: not a regular file", "s1: ", "s2/real: "] {
        assert!(
            stderr.lines().any(|l| l.contains("skipped") && l.contains(skipped)),
            "{skipped}: {stderr}"
        );
    }
}

/// `trainer fakes --kinds reconstruct,denoise`: the generators and the denoisers learn the real
/// faces (their error is logged, and is a few grey levels), and each fake is its source with the
/// fine detail of a reconstruction or of a denoised copy: every crop changed, its sharpness and
/// brightness kept, and the two kinds differ.
#[test]
fn reconstructions_keep_their_source_s_content_and_sharpness() {
    let tmp = run_folder_with("trainer-reconstruct", &["t1.jpg", "astronaut.png", "einstein.jpg"]);
    let run = bare_trainer(
        &["fakes", "--kinds", "reconstruct,denoise", "--per-face", "1", "--size", "96"],
        &[("--data", &tmp.join("data")), ("--out", &tmp.join("set")), ("--cache", &tmp.join("c"))],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    for kind in ["reconstruct", "denoise"] {
        let errors: Vec<f64> = stderr
            .lines()
            .filter(|l| l.contains(&format!("{kind}: generators trained")))
            .find_map(|l| l.split_once("mean error in grey levels: "))
            .map(|(_, list)| {
                let list = list.trim_end_matches(')');
                list.split(", ").filter_map(|e| e.rsplit(' ').next()?.parse().ok()).collect()
            })
            .unwrap_or_default();
        assert_eq!(errors.len(), 2, "{stderr}");
        assert!(errors.iter().all(|e| (0.5..20.0).contains(e)), "{kind}: {errors:?}");
    }
    let real = pngs(&tmp.join("set/real"));
    assert_eq!(real.len(), 8);
    for source in &real {
        let stem = source.file_stem().and_then(|s| s.to_str()).expect("name");
        let src = rgb(source);
        let made: Vec<RgbImage> = ["reconstruct", "denoise"]
            .map(|kind| rgb(&tmp.join(format!("set/fake/{kind}/{stem}-0.png"))))
            .into();
        for fake in &made {
            assert!(mean_diff(&src, fake, |_, _| true) > 0.5, "{stem}: unchanged");
            let (a, b) = (Cues::of(&src, [0.0; 4], b""), Cues::of(fake, [0.0; 4], b""));
            let ratio = b.sharpness / a.sharpness;
            assert!((0.5..2.0).contains(&ratio), "{stem}: sharpness ×{ratio}");
            assert!((a.brightness - b.brightness).abs() < 2.0, "{stem}: {a:?} {b:?}");
        }
        assert!(mean_diff(&made[0], &made[1], |_, _| true) > 0.5, "{stem}: the same fake twice");
    }
}
