//! The `edge` binary as the board runs it: the real-time loop over a folder of frames, settings
//! from a board profile, systemd's notify protocol and a clean stop on SIGTERM.

mod support;

use serde_json::Value;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{photo, root};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-board-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `n` copies of a test photo as frames.
fn frames(dir: &Path, name: &str, n: usize) {
    let img = edge::decode::open(&photo(name)).expect("photo");
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
    let dir = scratch("events");
    frames(&dir, "astronaut.png", 6);
    let out = edge()
        .args(["--dir"])
        .arg(&dir)
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
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_board_profile_sets_defaults_and_flags_override_it() {
    let dir = scratch("profile");
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
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn under_systemd_it_notifies_feeds_the_watchdog_and_stops_cleanly_on_sigterm() {
    let dir = scratch("notify");
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
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_camera_fails_at_start_up_with_one_line() {
    let out = edge().args(["--camera", "57"]).output().expect("edge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("camera 57") && stderr.contains("/dev/video57"), "{stderr}");
}
