//! The `edge` binary as the board runs it: the real-time loop over a folder of frames, settings
//! from a board profile, systemd's notify protocol and a clean stop on SIGTERM.

use serde_json::Value;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{photo, root, Scratch};

/// `n` copies of a test photo as frames.
fn frames(dir: &Path, name: &str, n: usize) {
    let img = edge::input::decode::open(&photo(name)).expect("photo");
    for i in 0..n {
        img.save(dir.join(format!("frame{i:03}.png"))).expect("write frame");
    }
}

fn edge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
    cmd.env("EDGE_MODELS", root().join("models")).env_remove("NOTIFY_SOCKET");
    cmd
}

fn json_lines(text: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn a_folder_played_as_frames_gives_events_and_statistics() {
    let dir = Scratch::new("events");
    frames(&dir, "astronaut.png", 6);
    let out = edge()
        .args(["--dir"])
        .arg(&*dir)
        .args(["--json", "--stats-every", "0"])
        .output()
        .expect("edge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = json_lines(&out.stdout);
    let kinds: Vec<(&str, u64, u64)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or(""),
                e["track"].as_u64().unwrap_or(0),
                e["frame"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(kinds, [("appeared", 1, 0), ("left", 1, 5)], "{stderr}");
    // The default classifier's smoothed p(FAKE) and label; the box is the astronaut's face.
    let p = events[0]["p_fake"].as_f64().expect("p_fake");
    assert!((0.0..=1.0).contains(&p));
    assert!(["REAL", "FAKE"].contains(&events[0]["label"].as_str().expect("label")));
    let b: Vec<f64> =
        events[0]["box"].as_array().expect("box").iter().filter_map(Value::as_f64).collect();
    assert!((b[0] - 174.0).abs() < 5.0 && (b[2] - 279.0).abs() < 5.0, "{b:?}");
    assert!(events[0]["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 24));
    assert!(stderr.contains("processed 6"), "{stderr}");
}

#[test]
fn a_board_profile_sets_defaults_and_flags_override_it() {
    let dir = Scratch::new("profile");
    std::fs::create_dir_all(dir.join("frames")).expect("frames dir");
    frames(&dir.join("frames"), "astronaut.png", 4);
    let profile = dir.join("board.toml");
    // Every profile of boards/ loads and runs (on the frames folder instead of a camera).
    for entry in std::fs::read_dir(root().join("boards")).expect("boards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = edge()
            .arg("--config")
            .arg(&path)
            .arg("--dir")
            .arg(dir.join("frames"))
            .args(["--max-frames", "1", "--json"])
            .output()
            .expect("edge runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", path.display());
        assert_eq!(json_lines(&out.stdout).len(), 2, "{}: {stderr}", path.display());
    }
    // The service's example configuration too: every key is a flag `edge` knows. Its camera is
    // left out (a frame source excludes the other), its models and snapshot folders overridden.
    let service = std::fs::read_to_string(root().join("systemd/edge.toml")).expect("edge.toml");
    let without_camera: String =
        service.lines().filter(|l| !l.starts_with("camera")).map(|l| format!("{l}\n")).collect();
    assert!(without_camera.len() < service.len(), "systemd/edge.toml sets no camera");
    let out = edge()
        .arg("--config")
        .arg(dir.write("service.toml", without_camera))
        .arg("--dir")
        .arg(dir.join("frames"))
        .arg("--models")
        .arg(root().join("models"))
        .arg("--snapshots")
        .arg(dir.join("snapshots"))
        .args(["--max-frames", "1"])
        .output()
        .expect("edge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd/edge.toml: {stderr}");
    assert_eq!(json_lines(&out.stdout).len(), 2, "systemd/edge.toml: {stderr}");
    std::fs::write(
        &profile,
        format!(
            "dir = {:?}\ndetector = \"short\"\njson = true\nstats-every = 0\nmax-frames = 2\n",
            dir.join("frames")
        ),
    )
    .expect("write profile");
    let run = |extra: &[&str]| {
        let out = edge().arg("--config").arg(&profile).args(extra).output().expect("edge runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_lines(&out.stdout)
    };
    let short = run(&[]);
    assert_eq!(short.last().and_then(|e| e["frame"].as_u64()), Some(1), "max-frames = 2");
    let full = run(&["--detector", "full", "--max-frames", "3"]);
    assert_eq!(full.last().and_then(|e| e["frame"].as_u64()), Some(2));
    // The short- and full-range detectors box the face differently: the flag took effect.
    assert_ne!(short[0]["box"], full[0]["box"]);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "detectr = \"short\"\n").expect("write");
    let out = edge().arg("--config").arg(&bad).output().expect("edge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("bad.toml") && stderr.contains("unknown setting `detectr`"),
        "{stderr}"
    );
}

#[test]
fn under_systemd_it_notifies_feeds_the_watchdog_and_stops_cleanly_on_sigterm() {
    let dir = Scratch::new("notify");
    std::fs::create_dir_all(dir.join("frames")).expect("frames dir");
    frames(&dir.join("frames"), "astronaut.png", 3);
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let child = edge()
        .arg("--dir")
        .arg(dir.join("frames"))
        .args(["--loop", "--fps", "20", "--json", "--stats-every", "0.5"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edge starts");
    let mut seen = vec![];
    let until = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let has = |s: &str| seen.iter().any(|m| m.starts_with(s));
        if has("READY=1") && has("WATCHDOG=1") && has("STATUS=") {
            break;
        }
    }
    // SIGTERM: the loop ends, the faces still tracked leave, statistics are printed, exit 0.
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(kill.success());
    let out = child.wait_with_output().expect("edge exits");
    while let Ok(n) = socket.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(seen.first().map(String::as_str), Some("READY=1"), "{seen:?}");
    for message in ["WATCHDOG=1", "STATUS=", "STOPPING=1"] {
        assert!(seen.iter().any(|m| m.starts_with(message)), "no {message} in {seen:?}");
    }
    assert!(stderr.contains("edge: done:"), "{stderr}");
    let events = json_lines(&out.stdout);
    assert_eq!(events.first().and_then(|e| e["event"].as_str()), Some("appeared"));
    assert_eq!(events.last().and_then(|e| e["event"].as_str()), Some("left"));
}

#[test]
fn a_missing_camera_fails_at_start_up_with_one_line() {
    let out = edge().args(["--camera", "57"]).output().expect("edge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("camera 57") && stderr.contains("/dev/video57"), "{stderr}");
}

/// Test photos copied as frames, in this order: one face, six faces, none.
fn mixed_frames(dir: &Path) {
    let order = ["astronaut.png", "astronaut.png", "t1.jpg", "t1.jpg", "coffee.png"];
    for (i, name) in order.iter().chain(["astronaut.png", "t1.jpg"].iter()).enumerate() {
        std::fs::copy(photo(name), dir.join(format!("frame{i:02}-{name}"))).expect("copy frame");
    }
}

/// The loop's events over the mixed frames with `args`; each face leaves at the next detection
/// pass that misses it, and p(FAKE) is the classifier's own (no smoothing).
fn loop_events(frames: &Path, args: &[&str]) -> Vec<Value> {
    let out = edge()
        .arg("--dir")
        .arg(frames)
        .args(["--json", "--stats-every", "0", "--forget-after", "0", "--smoothing", "1"])
        .args(args)
        .output()
        .expect("edge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert!(stderr.contains("processed 7"), "{args:?}: {stderr}");
    json_lines(&out.stdout)
}

#[test]
fn two_threads_give_the_same_events_as_one() {
    let dir = Scratch::new("threads");
    mixed_frames(&dir);
    for every in ["1", "2"] {
        let one = loop_events(&dir, &["--threads", "1", "--detect-every", every]);
        let two = loop_events(&dir, &["--threads", "2", "--detect-every", every]);
        // Seven faces appear and leave at least once over the run.
        let appeared = one.iter().filter(|e| e["event"] == "appeared").count();
        assert!(appeared >= 7, "detect every {every}: {one:#?}");
        assert_eq!(one.len(), two.len(), "detect every {every}: {one:#?}\nvs\n{two:#?}");
        for (a, b) in one.iter().zip(&two) {
            for field in ["event", "source", "frame", "track", "box", "label", "previous"] {
                assert_eq!(a[field], b[field], "{field}, detect every {every}: {a} vs {b}");
            }
            let (pa, pb) = (a["p_fake"].as_f64(), b["p_fake"].as_f64());
            assert!(
                pa.zip(pb).is_some_and(|(pa, pb)| (pa - pb).abs() <= 1e-4),
                "p_fake, detect every {every}: {a} vs {b}"
            );
        }
    }
    let out = edge().arg("--dir").arg(&*dir).args(["--threads", "3"]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--threads") && stderr.contains("from 1 to 2"), "{stderr}");
}

/// The board as it publishes: a folder run with `--mqtt`, watched by `mosquitto_sub`. Needs
/// `mosquitto` and `mosquitto-clients` (`.ci/deps`).
#[cfg(feature = "mqtt")]
mod mqtt {
    use super::{edge, frames, json_lines};
    use serde_json::Value;
    use testkit::mqtt::{free_port, Broker, Subscriber};
    use testkit::Scratch;

    fn keys(v: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> =
            v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn events_status_and_statistics_reach_a_subscriber() {
        let dir = Scratch::new("mqtt");
        let frames_dir = dir.join("frames");
        std::fs::create_dir_all(&frames_dir).expect("frames dir");
        frames(&frames_dir, "astronaut.png", 4);
        let broker = Broker::start(&dir, free_port(), "allow_anonymous true");
        let mut sub = Subscriber::start(broker.port, "fleet/#", &[]);
        let out = edge()
            .arg("--dir")
            .arg(&frames_dir)
            .args(["--json", "--stats-every", "0", "--mqtt", &format!("127.0.0.1:{}", broker.port)])
            .args(["--mqtt-topic", "fleet", "--mqtt-client-id", "board-7"])
            .output()
            .expect("edge runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("publishing events to fleet/board-7/events"), "{stderr}");
        assert!(!stderr.contains("not delivered"), "{stderr}");

        // In the order published: online, the events, the run's statistics, offline.
        let online = sub.next_on("fleet/board-7/status");
        assert_eq!(online.payload, "online");
        let printed = json_lines(&out.stdout);
        assert_eq!(printed.len(), 2, "{stderr}");
        for line in &printed {
            let msg = sub.next_on("fleet/board-7/events");
            assert!(!msg.retained);
            // The same object as the `--json` line, time included.
            assert_eq!(&msg.json(), line);
        }
        let [appeared, left] = [&printed[0], &printed[1]];
        assert_eq!(
            (appeared["event"].as_str(), left["event"].as_str()),
            (Some("appeared"), Some("left"))
        );
        for e in [appeared, left] {
            assert_eq!(
                keys(e),
                ["box", "event", "frame", "label", "p_fake", "source", "time", "track"]
            );
            assert_eq!(e["box"].as_array().map(Vec::len), Some(4), "{e}");
            assert!(["REAL", "FAKE"].contains(&e["label"].as_str().unwrap_or("")), "{e}");
        }
        let stats = sub.next_on("fleet/board-7/stats").json();
        assert_eq!(
            keys(&stats),
            [
                "bad_frames",
                "capture_fps",
                "captured",
                "detect_passes",
                "ms",
                "processed",
                "processed_fps",
                "seconds",
                "skipped"
            ]
        );
        assert_eq!(keys(&stats["ms"]), ["classify", "crop", "detect", "frame"]);
        assert_eq!(
            (stats["processed"].as_u64(), stats["detect_passes"].as_u64()),
            (Some(4), Some(4))
        );
        let offline = sub.next_on("fleet/board-7/status");
        assert_eq!(offline.payload, "offline");

        // A dashboard that subscribes afterwards sees the board offline (retained).
        let mut late = Subscriber::start(broker.port, "fleet/+/status", &[]);
        let status = late.next_on("fleet/board-7/status");
        assert_eq!((status.payload.as_str(), status.retained), ("offline", true));
    }

    /// A broker that refuses the credentials does not stop the board: the loop runs, the refusal is
    /// one line on stderr (not one per retry), and the exit says what was not delivered.
    #[test]
    fn refused_credentials_are_one_line_and_the_loop_goes_on() {
        let dir = Scratch::new("mqtt-refused");
        let frames_dir = dir.join("frames");
        std::fs::create_dir_all(&frames_dir).expect("frames dir");
        frames(&frames_dir, "astronaut.png", 3);
        let broker = Broker::with_password(&dir, "board", "s3cret");
        let mut watcher = Subscriber::start(broker.port, "#", &["-u", "board", "-P", "s3cret"]);
        let credentials = dir.write("mqtt-credentials", "board:wrong-password\n");
        let out = edge()
            .arg("--dir")
            .arg(&frames_dir)
            .args(["--json", "--stats-every", "0", "--mqtt", &format!("127.0.0.1:{}", broker.port)])
            .args(["--mqtt-topic", "fleet", "--mqtt-client-id", "board-8", "--mqtt-credentials"])
            .arg(&credentials)
            .output()
            .expect("edge runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(json_lines(&out.stdout).len(), 2, "the loop's events still on stdout: {stderr}");
        // Several attempts were made (back-off from 250 ms, over the run and the 2 s flush),
        // and refused each time, but said once.
        let refusals: Vec<&str> =
            stderr.lines().filter(|l| l.contains("refused the connection")).collect();
        assert_eq!(refusals.len(), 2, "the refusal, and the summary at exit: {stderr}");
        let first = refusals[0];
        assert!(first.contains("not authorized") && first.contains("user `board`"), "{first}");
        assert!(first.contains(&credentials.display().to_string()), "{first}");
        assert!(first.contains("retrying"), "{first}");
        assert!(
            refusals[1].starts_with("edge: mqtt: 2 event(s) not delivered: MQTT broker"),
            "{stderr}"
        );
        assert!(!stderr.contains("wrong-password"), "{stderr}");
        let published: Vec<String> = watcher.printed().into_iter().map(|m| m.topic).collect();
        assert!(!published.iter().any(|t| t.starts_with("fleet/")), "{published:?}");
    }
}
