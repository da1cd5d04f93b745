//! `edge serve`: the real binary on a free loopback port, driven over real sockets.

use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::http::{connect, form, head, read_reply, request, Server, HANG};
use testkit::{photo, root, Scratch, TestNet};

/// A running `edge serve` with the test classifier; killed when dropped.
pub struct Served {
    server: Server,
    pub classifier: PathBuf,
    _dir: Scratch,
}

impl std::ops::Deref for Served {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Served {
    pub fn start(name: &str, args: &[&str]) -> Served {
        Served::start_on(name, "127.0.0.1:0", args)
    }

    pub fn start_on(name: &str, listen: &str, args: &[&str]) -> Served {
        let dir = Scratch::new(name);
        let classifier = TestNet::new(64).write_onnx(&dir);
        let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
        command
            .env("EDGE_MODELS", root().join("models"))
            .args(["serve", "--listen", listen, "--model"])
            .arg(&classifier)
            .args(args);
        Served { server: Server::start(command), classifier, _dir: dir }
    }

    fn stop(self) -> std::process::ExitStatus {
        self.server.stop()
    }
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

/// No memory is kept per request: once warmed up (200 uploads with a face each, two workers,
/// four clients), the server's resident memory grows by at most 4 MiB over 400 more uploads in
/// at least one of two such rounds; a leak of 10 KiB per upload would add 4 MiB to each. One
/// round may grow more without a leak: on a busy machine the allocator once took 10 MiB more in
/// a single step (85 MB after 600 uploads, 96 MB after 1,000), which it then kept and reused.
#[test]
fn memory_stays_flat_over_1400_uploads() {
    let served = Served::start("serve-memory", &["--workers", "2", "--queue", "4"]);
    let astronaut = image::open(photo("astronaut.png")).expect("the photo");
    let small = astronaut.resize(256, 256, image::imageops::FilterType::Triangle);
    let mut png = std::io::Cursor::new(vec![]);
    small.write_to(&mut png, image::ImageFormat::Png).expect("encodes a PNG");
    let png = png.into_inner();
    let upload = |count: usize| {
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..count / 4 {
                        let reply = served.post("/api/analyze", "image/png", &png);
                        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
                        assert_eq!(reply.json()["faces"].as_array().map(Vec::len), Some(1));
                    }
                });
            }
        })
    };
    upload(200);
    let mut rss = vec![served.memory_kib("VmRSS")];
    for _ in 0..3 {
        upload(400);
        rss.push(served.memory_kib("VmRSS"));
    }
    assert_eq!(served.get("/api/stats").json()["analysed"].as_u64(), Some(1400));
    let growth = |round: usize| rss[round + 1].saturating_sub(rss[round]);
    assert!(
        growth(1).min(growth(2)) <= 4 * 1024,
        "resident KiB after 200, 600, 1,000 and 1,400 uploads: {rss:?}"
    );
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
fn a_non_loopback_address_without_a_good_token_is_refused_at_start() {
    let dir = Scratch::new("serve-refused");
    let short = dir.write("short", "0123456789\n");
    let missing = dir.join("missing");
    let cases = [
        (vec!["--listen", "0.0.0.0:0"], vec!["0.0.0.0:0", "loopback", "--token-file"]),
        (vec!["--token-file", path_str(&short)], vec!["short", "at least 16 characters"]),
        (vec!["--token-file", path_str(&missing)], vec!["missing", "No such file"]),
    ];
    for (args, words) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_edge"))
            .env("EDGE_MODELS", root().join("models"))
            .arg("serve")
            .args(&args)
            .output()
            .expect("edge runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for word in words {
            assert!(stderr.contains(word), "{args:?}: no {word:?} in {stderr}");
        }
    }
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 scratch path")
}

/// With --token-file, on every interface: the API wants the bearer token and the page a login,
/// whose cookie then opens both; /healthz and the page's script and style stay open.
#[test]
fn with_a_token_the_api_wants_it_and_the_page_a_login() {
    let dir = Scratch::new("serve-token-file");
    let token = "f3a9c2e1b7d64e08a1c5";
    let file = dir.write("token", format!("{token}\n"));
    let served = Served::start_on("serve-token", "0.0.0.0:0", &["--token-file", path_str(&file)]);
    let call = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        request(served.addr, method, path, headers, body)
    };
    let bearer = format!("Bearer {token}");
    let photo_bytes = std::fs::read(photo("astronaut.png")).expect("reads the photo");
    let png = ("Content-Type", "image/png");

    // Programs: the bearer token, and nothing else.
    for (what, headers) in [
        ("no token", vec![png]),
        ("a wrong token", vec![png, ("Authorization", "Bearer f3a9c2e1b7d64e08a1c6")]),
        ("the token as a cookie", vec![png, ("Cookie", &*format!("edge_session={token}"))]),
    ] {
        let reply = call("POST", "/api/analyze", &headers, &photo_bytes);
        assert_eq!(reply.status, 401, "{what}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{what}");
        assert!(reply.error().contains("token"), "{what}: {}", reply.error());
        for path in ["/api/stats", "/metrics"] {
            assert_eq!(call("GET", path, &headers, b"").status, 401, "{what}: {path}");
        }
    }
    let reply = call("POST", "/api/analyze", &[png, ("Authorization", &bearer)], &photo_bytes);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["faces"].as_array().map(Vec::len), Some(1));
    let stats = call("GET", "/api/stats", &[("Authorization", &bearer)], b"");
    assert_eq!(stats.json()["analysed"].as_u64(), Some(1));

    // People: the page sends them to the login form, whose cookie holds no token.
    let page = served.get("/");
    assert_eq!((page.status, page.header("location")), (303, Some("/login")));
    let form = served.get("/login");
    assert_eq!(form.status, 200);
    assert!(String::from_utf8_lossy(&form.body).contains("action=\"/login\""));
    let login = |typed: &str| {
        let body = format!("token={typed}");
        served.post("/login", "application/x-www-form-urlencoded", body.as_bytes())
    };
    let wrong = login("0123456789abcdef0123");
    assert_eq!(wrong.status, 401);
    assert!(String::from_utf8_lossy(&wrong.body).contains("not this board's token"));
    assert_eq!(wrong.header("set-cookie"), None);
    let right = login(token);
    assert_eq!((right.status, right.header("location")), (303, Some("/")));
    let set_cookie = right.header("set-cookie").expect("a session cookie");
    for attribute in ["edge_session=", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains(token), "the cookie holds a hash: {set_cookie}");
    let cookie = set_cookie.split(';').next().expect("name=value");
    let page = call("GET", "/", &[("Cookie", cookie)], b"");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("Drop photos"));
    let reply = call("POST", "/api/analyze", &[png, ("Cookie", cookie)], &photo_bytes);
    assert_eq!(reply.status, 200);

    // Open to all: the health check (for monitors) and the page's script and style.
    for path in ["/healthz", "/page.js", "/page.css"] {
        assert_eq!(served.get(path).status, 200, "{path}");
    }
}
