//! `cargo bench -p trainer`: training throughput of MobileNetV3-Small on burn's Flex CPU backend —
//! images per second through full optimisation steps (forward, backward, Adam) at 224 and 128
//! pixels with batch 16, then the peak memory of steps at 224 with batch 32. Inputs are random
//! face-sized images; the cost does not depend on their content. Built with `--features wgpu`, it
//! then compares wgpu on its default adapter with Flex at 64 and 128 pixels, step by step in turn.

use burn::optim::AdamConfig;
use burn::prelude::*;
use image::RgbImage;
use std::time::Instant;
use trainer::nets::{Backbone, Net};
use trainer::train::fit::step;

fn images(n: usize, size: u32, seed: u32) -> Vec<RgbImage> {
    (0..n as u32)
        .map(|k| {
            RgbImage::from_fn(size, size, |x, y| {
                let v =
                    (x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ (k + seed).wrapping_mul(101)) as u8;
                image::Rgb([v, v.wrapping_add(40), v.wrapping_mul(3)])
            })
        })
        .collect()
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Median images/s over `steps` timed steps, after one warm-up step.
fn throughput(size: u32, batch: usize, steps: usize) -> anyhow::Result<f64> {
    Ok(interleaved(&[Device::flex()], size, batch, steps)?[0])
}

/// Median images/s of each device over `steps` timed steps, after one warm-up step each, the
/// devices taking turns step by step so that they see the same machine.
fn interleaved(
    devices: &[Device],
    size: u32,
    batch: usize,
    steps: usize,
) -> anyhow::Result<Vec<f64>> {
    let meta = trainer::run::model_meta();
    let fake: Vec<bool> = (0..batch).map(|i| i % 2 == 1).collect();
    let mut runs = vec![];
    for plain in devices {
        let device = plain.clone().autodiff();
        let model = Net::new(Backbone::MobilenetV3Small, 1.0, false, &device);
        runs.push((device, Some(model), AdamConfig::new().init(), vec![]));
    }
    for i in 0..=steps {
        let batch_images = images(batch, size, i as u32);
        for (device, model, optim, rates) in &mut runs {
            let t = Instant::now();
            let m = model.take().ok_or_else(|| anyhow::anyhow!("no model"))?;
            *model = Some(
                step(m, optim, 1e-4, &batch_images, &fake, [1.0, 1.0], None, &meta, device)?.0,
            );
            if i > 0 {
                rates.push(batch as f64 / t.elapsed().as_secs_f64());
            }
        }
    }
    Ok(runs
        .into_iter()
        .map(|(.., mut rates)| {
            rates.sort_by(f64::total_cmp);
            rates[rates.len() / 2]
        })
        .collect())
}

fn main() -> anyhow::Result<()> {
    let steps: usize =
        std::env::var("TRAINER_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    println!("| input | batch | images/s (median of {steps} steps) |\n| ---: | ---: | ---: |");
    for (size, batch) in [(224, 16), (128, 16)] {
        println!("| {size} | {batch} | {:.1} |", throughput(size, batch, steps)?);
    }
    let rss_before = peak_rss_mib();
    let rate = throughput(224, 32, steps.min(4))?;
    println!("| 224 | 32 | {rate:.1} |");
    if let (Some(before), Some(after)) = (rss_before, peak_rss_mib()) {
        println!("\npeak RSS {after:.0} MiB after the batch-32 steps at 224 ({before:.0} MiB before them)");
    }
    #[cfg(feature = "wgpu")]
    {
        use trainer::train::{Adapter, Backend};
        // `--features wgpu`: wgpu on its default adapter against Flex, taking turns.
        let gpu = Backend::Wgpu.device(Adapter::Default)?;
        println!("\n| input | batch | Flex images/s | wgpu images/s | wgpu ÷ Flex |\n| ---: | ---: | ---: | ---: | ---: |");
        for (size, batch) in [(64, 16), (128, 16)] {
            let r = interleaved(&[Device::flex(), gpu.clone()], size, batch, steps)?;
            println!("| {size} | {batch} | {:.1} | {:.1} | {:.2} |", r[0], r[1], r[1] / r[0]);
        }
    }
    Ok(())
}
