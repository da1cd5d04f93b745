//! `cargo bench --bench serve`: upload-to-verdict latency of `edge serve` on astronaut.png (one
//! face), with 1 and with 8 clients at once, beside the same analysis made in this process the
//! way `edge --file` makes it (decode, detect, classify), all in the same run: the server's
//! overhead as a ratio. Also the server's resident memory idle (models loaded) and its peak.
//! The default models (full-range BlazeFace + models/classifier.onnx); run `models/fetch` first.
//! `SERVE_BENCH_REQUESTS` (default 200) sets the requests per measurement.

use edge::{DetectorConfig, Pipeline};
use std::process::Command;
use std::time::Instant;
use testkit::http::{request, Server};

/// Milliseconds at quantile `q` of `samples` (sorted here).
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    // The allocator set as the `edge` binary sets it, so the in-process baseline is not slowed by
    // page faults the server does not have.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    edge::infer::model::keep_freed_memory();
    let requests: usize =
        std::env::var("SERVE_BENCH_REQUESTS").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
    let photo = testkit::photo("astronaut.png");
    let bytes = std::fs::read(&photo)?;
    let detector = testkit::model("face_detection_full_range.tflite");
    let classifier = testkit::model("classifier.onnx");

    // The baseline: edge --file's analysis of the photo, one after another on this thread.
    let pipeline = Pipeline::load(
        &detector,
        DetectorConfig::default(),
        Some(&classifier),
        edge::infer::crop::DEFAULT_MARGIN,
        None,
    )?;
    pipeline.analyse_file(&photo)?;
    let mut local: Vec<f64> = (0..requests)
        .map(|_| {
            let t = Instant::now();
            pipeline.analyse_file(&photo).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<anyhow::Result<_>>()?;
    drop(pipeline);

    // Two workers (the machine's cores, as on a Pi 4's two spare ones) and a queue that holds
    // every client, so no upload is turned away and each latency counts.
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--queue", "16"])
        .arg("--detector")
        .arg(&detector)
        .arg("--model")
        .arg(&classifier);
    let server = Server::start(command);
    let idle = server.memory_kib("VmRSS");
    let upload = || {
        let t = Instant::now();
        let reply = request(server.addr, "POST", "/api/analyze", &[], &bytes);
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        t.elapsed().as_secs_f64() * 1e3
    };
    upload();
    let mut one: Vec<f64> = (0..requests).map(|_| upload()).collect();
    let t = Instant::now();
    let mut eight: Vec<f64> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| (0..requests / 8).map(|_| upload()).collect::<Vec<_>>()))
            .collect();
        clients.into_iter().flat_map(|c| c.join().expect("client")).collect()
    });
    let eight_rate = eight.len() as f64 / t.elapsed().as_secs_f64();
    let peak = server.memory_kib("VmHWM");
    let stopped = server.stop();
    assert!(stopped.success(), "edge serve exited with {stopped}");

    let base = quantile(&mut local, 0.5);
    println!("## edge serve: astronaut.png, {requests} requests each\n");
    println!("| | p50 ms | p99 ms | p50 / in-process |\n| --- | ---: | ---: | ---: |");
    for (name, samples) in [
        ("in-process (`edge --file`'s analysis)", &mut local),
        ("edge serve, 1 client", &mut one),
        ("edge serve, 8 clients (2 workers)", &mut eight),
    ] {
        let (p50, p99) = (quantile(samples, 0.5), quantile(samples, 0.99));
        println!("| {name} | {p50:.1} | {p99:.1} | {:.2} |", p50 / base);
    }
    println!(
        "\nThroughput with 8 clients: {eight_rate:.1} uploads/s ({:.2}x one in-process \
         analysis at a time). Server memory: {:.0} MiB idle with the models loaded, {:.0} MiB \
         peak.",
        eight_rate * base / 1e3,
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    Ok(())
}
