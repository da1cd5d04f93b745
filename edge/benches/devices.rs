//! `cargo bench --bench devices`: the per-frame cost of the camera conversions and of the
//! framebuffer display at the board's usual sizes (median and 90th percentile of
//! `EDGE_BENCH_RUNS` runs, default 200; single thread). Run `models/fetch` first.

use edge::live::source::camera::convert::{mjpeg_to_rgb, nv12_to_rgb, yuyv_to_rgb};
use edge::sinks::display::{render, Channel, Framebuffer, Geometry};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{resize, FilterType};
use image::RgbImage;
use std::time::Instant;

const RGB565: [Channel; 3] = [Channel::new(11, 5), Channel::new(5, 6), Channel::new(0, 5)];
const XRGB8888: [Channel; 3] = [Channel::new(16, 8), Channel::new(8, 8), Channel::new(0, 8)];

fn time(name: &str, runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<()> {
    f()?; // warm-up
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!("| {name} | {:.3} | {:.3} |", at(0.5), at(0.9));
    Ok(())
}

/// BT.601 limited range, chroma averaged over pixel pairs (as a camera sends YUYV).
fn yuyv_of(image: &RgbImage) -> Vec<u8> {
    let yuv = |p: &[u8]| {
        let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
        [
            16.0 + 0.257 * r + 0.504 * g + 0.098 * b,
            128.0 - 0.148 * r - 0.291 * g + 0.439 * b,
            128.0 + 0.439 * r - 0.368 * g - 0.071 * b,
        ]
    };
    let mut out = Vec::new();
    for pair in image.as_raw().chunks_exact(6) {
        let (a, b) = (yuv(&pair[..3]), yuv(&pair[3..]));
        out.extend([a[0], (a[1] + b[1]) / 2.0, b[0], (a[2] + b[2]) / 2.0].map(|v| v as u8));
    }
    out
}

fn main() -> anyhow::Result<()> {
    let runs = std::env::var("EDGE_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
    let photo = image::open(testkit::photo("sample1.jpg"))?.into_rgb8();
    let vga = resize(&photo, 640, 480, FilterType::Triangle);
    let hd = resize(&photo, 1280, 720, FilterType::Triangle);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 80).encode_image(&vga)?;
    let yuyv = yuyv_of(&vga);
    let nv12 = vec![128u8; 640 * 480 * 3 / 2];

    println!("| step | median ms | p90 ms |\n| --- | --- | --- |");
    time("MJPEG 640×480 → RGB (image/zune-jpeg)", runs, || mjpeg_to_rgb(&jpeg).map(drop))?;
    time("YUYV 640×480 → RGB", runs, || yuyv_to_rgb(&yuyv, 640, 480).map(drop))?;
    time("NV12 640×480 → RGB", runs, || nv12_to_rgb(&nv12, 640, 480).map(drop))?;

    let mut screen = Vec::new();
    for (name, bpp, rgb) in [("RGB565", 16, RGB565), ("XRGB8888", 32, XRGB8888)] {
        let g = Geometry::packed(800, 480, bpp, rgb);
        time(
            &format!("render 640×480 → 800×480 {name} (letterbox + nearest + pack)"),
            runs,
            || {
                render(&vga, &g, &mut screen);
                Ok(())
            },
        )?;
        time(&format!("render 1280×720 → 800×480 {name}"), runs, || {
            render(&hd, &g, &mut screen);
            Ok(())
        })?;
    }
    time("for comparison: image resize 1280×720 → 800×450, Triangle", runs.min(50), || {
        resize(&hd, 800, 450, FilterType::Triangle);
        Ok(())
    })?;
    time("for comparison: image resize 1280×720 → 800×450, Nearest", runs.min(50), || {
        resize(&hd, 800, 450, FilterType::Nearest);
        Ok(())
    })?;

    let path = std::env::temp_dir().join(format!("edge-bench-fb-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let mut fb = Framebuffer::from_parts(&path, file, Geometry::packed(800, 480, 16, RGB565))?;
    time(
        "Framebuffer::show 640×480 → 800×480 RGB565 (render + pwrite to a file)",
        runs,
        || fb.show(&vga),
    )?;
    std::fs::remove_file(&path)?;
    Ok(())
}
