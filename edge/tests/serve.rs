//! `edge serve`: the real binary on a free loopback port, driven over real sockets.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{photo, root, Scratch, TestNet};

/// Hang guard only: a request or a start-up that takes longer has hung.
const HANG: Duration = Duration::from_secs(120);

/// A running `edge serve` with the test classifier; killed when dropped.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    classifier: PathBuf,
    _dir: Scratch,
}

impl Served {
    pub fn start(name: &str, args: &[&str]) -> Served {
        let dir = Scratch::new(name);
        let classifier = TestNet::new(64).write_onnx(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
            .env("EDGE_MODELS", root().join("models"))
            .env_remove("NOTIFY_SOCKET")
            .args(["serve", "--listen", "127.0.0.1:0", "--model"])
            .arg(&classifier)
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("edge serve starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("reads stderr");
        let addr = line
            .trim()
            .strip_prefix("edge: serving on http://")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .parse()
            .expect("an address");
        // The rest of stderr is drained so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let served = Served { child, addr, classifier, _dir: dir };
        let start = Instant::now();
        while served.get("/healthz").status != 200 {
            assert!(start.elapsed() < HANG, "models not loaded after {HANG:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    pub fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        request(self.addr, "POST", path, &[("Content-Type", content_type)], body)
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return status;
            }
            assert!(start.elapsed() < HANG, "still running {HANG:?} after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_string()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(HANG)).expect("read timeout");
    stream
}

/// The request head, with `Connection: close` and the body's length.
fn head(method: &str, path: &str, headers: &[(&str, &str)], length: usize) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head + &format!("Content-Length: {length}\r\n\r\n")
}

/// One HTTP/1.1 request, the whole reply read until the server closes.
fn request(addr: SocketAddr, method: &str, path: &str, h: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = connect(addr);
    stream.write_all(head(method, path, h, body.len()).as_bytes()).expect("writes the head");
    // A server that answers early (413, 503) may close before reading the whole body.
    let _ = stream.write_all(body);
    read_reply(stream)
}

fn read_reply(mut stream: TcpStream) -> Reply {
    let mut raw = vec![];
    stream.read_to_end(&mut raw).expect("reads the reply");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked") {
        body = unchunk(&body);
    }
    Reply { status: status.expect("a status line"), headers, body }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).expect("ascii"), 16)
            .expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.extend(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
}

/// A multipart form with the given (field, file name, content) parts.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "edge-test-boundary-7d41";
    let mut body = vec![];
    for (field, file, content) in parts {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"").bytes(),
        );
        if let Some(file) = file {
            body.extend(format!("; filename=\"{file}\"").bytes());
        }
        body.extend(b"\r\nContent-Type: application/octet-stream\r\n\r\n");
        body.extend(*content);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `edge --json --file` on the same photo and model: the line the API must match.
fn edge_json(classifier: &std::path::Path, file: &std::path::Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_edge"))
        .env("EDGE_MODELS", root().join("models"))
        .arg("--model")
        .arg(classifier)
        .arg("--json")
        .arg("--file")
        .arg(file)
        .output()
        .expect("edge runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

#[test]
fn astronaut_is_analysed_as_edge_file_does() {
    let served = Served::start("serve-astronaut", &[]);
    let astronaut = photo("astronaut.png");
    let bytes = std::fs::read(&astronaut).expect("reads the photo");
    let expected = edge_json(&served.classifier, &astronaut);

    let raw = served.post("/api/analyze", "image/png", &bytes);
    assert_eq!(raw.status, 200, "{}", String::from_utf8_lossy(&raw.body));
    assert_eq!(raw.header("content-type"), Some("application/json"));
    let (content_type, body) = form(&[("note", None, b"hello"), ("image", Some("a.png"), &bytes)]);
    let multipart = served.post("/api/analyze", &content_type, &body);
    assert_eq!(multipart.status, 200, "{}", String::from_utf8_lossy(&multipart.body));
    for (reply, name) in [(raw.json(), "upload"), (multipart.json(), "a.png")] {
        assert_eq!(reply["file"], name);
        assert_eq!(reply["width"], expected["width"]);
        assert_eq!(reply["height"], expected["height"]);
        // Same decoder, models and crop: the same faces, to the last digit.
        assert_eq!(reply["faces"], expected["faces"]);
        assert_eq!(reply["faces"].as_array().map(Vec::len), Some(1));
        assert!(reply["faces"][0]["p_fake"].is_f64());
    }

    let annotated = served.post("/api/analyze?annotate=1", "image/png", &bytes);
    assert_eq!(annotated.status, 200);
    assert_eq!(annotated.header("content-type"), Some("image/jpeg"));
    let img = image::load_from_memory(&annotated.body).expect("a JPEG").into_rgb8();
    let original = image::load_from_memory(&bytes).expect("the photo").into_rgb8();
    assert_eq!(img.dimensions(), original.dimensions());
    // The face's box is drawn: the top edge of the box differs from the photo.
    let y0 = expected["faces"][0]["box"][1].as_f64().expect("box") as u32;
    let x = expected["faces"][0]["box"][0].as_f64().expect("box") as u32 + 20;
    let (a, b) = (img.get_pixel(x, y0), original.get_pixel(x, y0));
    let diff: i32 = (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum();
    assert!(diff > 60, "box edge {a:?} against photo {b:?}");
    assert_eq!(served.stop().code(), Some(0));
}

#[test]
fn every_route_answers_with_the_service_configuration() {
    // The service's configuration file, with the command line's models and port winning over it.
    let config = root().join("systemd/serve.toml");
    let models = root().join("models");
    let args = [config.to_str().expect("utf-8"), models.to_str().expect("utf-8")];
    let served = Served::start("serve-routes", &["--config", args[0], "--models", args[1]]);
    let health = served.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["classifier"], true);
    let before = served.get("/api/stats").json();
    assert_eq!(before["analysed"], 0);

    let bytes = std::fs::read(photo("astronaut.png")).expect("reads the photo");
    assert_eq!(served.post("/api/analyze", "image/png", &bytes).status, 200);
    assert_eq!(served.post("/api/analyze", "text/plain", b"not an image").status, 422);
    let stats = served.get("/api/stats").json();
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["analysed"], 1);
    assert_eq!(stats["bad_input"], 1);
    assert_eq!(stats["faces"], 1);
    for stage in ["decode", "detect", "crop", "classify", "total"] {
        assert!(stats["mean_ms"][stage].as_f64().is_some_and(|ms| ms >= 0.0), "{stats}");
    }

    let metrics = served.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "edge_analyze_requests_total 2",
        "edge_images_analysed_total 1",
        "edge_bad_input_total 1",
        "edge_faces_total 1",
        "edge_stage_seconds_count{stage=\"detect\"} 1",
        "edge_stage_seconds_bucket{stage=\"total\",le=\"+Inf\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert_eq!(served.get("/nowhere").status, 404);
    assert_eq!(served.get("/api/analyze").status, 405);
    assert_eq!(served.stop().code(), Some(0));
}

#[test]
fn bad_uploads_get_a_4xx_with_a_message_and_the_server_keeps_serving() {
    let served = Served::start("serve-bad", &["--max-upload-mb", "1"]);
    let photo_bytes = std::fs::read(photo("astronaut.png")).expect("reads the photo");
    let huge = testkit::bombs::png_header(60_000, 60_000, 2);
    let (no_file_type, no_file) = form(&[("note", None, b"hello")]);
    let (two_type, two) =
        form(&[("a", Some("a.png"), &photo_bytes[..1000]), ("b", Some("b.png"), b"x")]);
    let cases: [(&str, &str, &[u8], u16, &str); 6] = [
        ("empty", "image/png", b"", 400, "empty"),
        ("text", "text/plain", b"hello, I am not a photo", 422, "not an image"),
        ("truncated", "image/png", &photo_bytes[..photo_bytes.len() / 2], 422, "upload"),
        ("60000 px", "image/png", &huge, 422, "decoder limit"),
        ("form without a file", &no_file_type, &no_file, 400, "no file"),
        ("two files", &two_type, &two, 400, "2 files"),
    ];
    for (what, content_type, body, status, message) in cases {
        let reply = served.post("/api/analyze", content_type, body);
        assert_eq!(reply.status, status, "{what}: {}", String::from_utf8_lossy(&reply.body));
        let error = reply.error();
        assert!(error.to_lowercase().contains(message), "{what}: {error:?}");
        assert_eq!(served.get("/healthz").status, 200, "after {what}");
    }
    // Over the limit: refused from the head, before any of the body is sent.
    let mut stream = connect(served.addr);
    let h = head("POST", "/api/analyze", &[("Content-Type", "image/png")], 3 << 20);
    stream.write_all(h.as_bytes()).expect("writes the head");
    let reply = read_reply(stream);
    assert_eq!(reply.status, 413);
    assert!(reply.error().contains("3145728 bytes, above the length limit"), "{}", reply.error());
    assert_eq!(served.post("/api/analyze", "image/png", &photo_bytes).status, 200);
    let stats = served.get("/api/stats").json();
    assert_eq!((stats["bad_input"].as_u64(), stats["analysed"].as_u64()), (Some(7), Some(1)));
}

/// An upload whose head and first half of the body are sent, the rest held back.
fn half_sent(addr: SocketAddr, body: &[u8]) -> TcpStream {
    let mut stream = connect(addr);
    let h = head("POST", "/api/analyze", &[("Content-Type", "image/png")], body.len());
    stream.write_all(h.as_bytes()).expect("writes the head");
    stream.write_all(&body[..body.len() / 2]).expect("writes half the body");
    stream
}

#[test]
fn a_full_queue_answers_503_at_once_and_the_waiting_upload_completes() {
    // One worker and no queue: an upload still arriving holds the only place.
    let served = Served::start("serve-busy", &["--workers", "1", "--queue", "0"]);
    let bytes = std::fs::read(photo("astronaut.png")).expect("reads the photo");
    let mut first = half_sent(served.addr, &bytes);
    // The first upload is admitted once its head is read; until then a second may win the place,
    // so ask until one is turned away (each try is an independent request, none is retried).
    let start = Instant::now();
    let busy = loop {
        let reply = served.post("/api/analyze", "image/png", &bytes);
        if reply.status == 503 {
            break reply;
        }
        assert_eq!(reply.status, 200);
        assert!(start.elapsed() < HANG, "never turned away");
    };
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(busy.error().contains("busy"), "{}", busy.error());
    first.write_all(&bytes[bytes.len() / 2..]).expect("writes the rest");
    let reply = read_reply(first);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["faces"].as_array().map(Vec::len), Some(1));
    assert!(served.get("/api/stats").json()["busy"].as_u64() >= Some(1));
}

#[test]
fn fifty_concurrent_uploads_each_get_200_or_503() {
    let served = Served::start("serve-fifty", &["--workers", "1", "--queue", "2"]);
    let bytes = std::fs::read(photo("astronaut.png")).expect("reads the photo");
    let addr = served.addr;
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    let reply = request(
                        addr,
                        "POST",
                        "/api/analyze",
                        &[("Content-Type", "image/png")],
                        &bytes,
                    );
                    if reply.status == 503 {
                        assert_eq!(reply.header("retry-after"), Some("1"));
                    }
                    reply.status
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().expect("client thread")).collect()
    });
    assert!(statuses.iter().all(|&s| s == 200 || s == 503), "{statuses:?}");
    let ok = statuses.iter().filter(|&&s| s == 200).count() as u64;
    let stats = served.get("/api/stats").json();
    assert_eq!(stats["analysed"].as_u64(), Some(ok));
    assert_eq!(stats["busy"].as_u64(), Some(50 - ok));
    assert!(ok >= 1);
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish_then_exits_0() {
    let served = Served::start("serve-sigterm", &[]);
    let bytes = std::fs::read(photo("astronaut.png")).expect("reads the photo");
    let mut inflight = half_sent(served.addr, &bytes);
    // The upload is in flight once the server counts it.
    let start = Instant::now();
    while served.get("/api/stats").json()["requests"] != 1 {
        assert!(start.elapsed() < HANG, "the upload never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(served.child.id() as libc::pid_t, libc::SIGTERM) };
    // Stopping closes the listener: new connections are refused while the upload is held.
    while TcpStream::connect(served.addr).is_ok() {
        assert!(start.elapsed() < HANG, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    inflight.write_all(&bytes[bytes.len() / 2..]).expect("writes the rest");
    let reply = read_reply(inflight);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(served.stop().code(), Some(0));
}

#[test]
fn a_non_loopback_address_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_edge"))
        .env("EDGE_MODELS", root().join("models"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("edge runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("0.0.0.0:0") && stderr.contains("loopback"), "{stderr}");
}
