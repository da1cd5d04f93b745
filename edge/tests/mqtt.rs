//! The MQTT publisher against a real Mosquitto broker started on loopback by the tests, observed
//! by a real subscriber (`mosquitto_sub`). Needs `mosquitto` and `mosquitto-clients` (`.ci/deps`).
#![cfg(feature = "mqtt")]

use edge::events::{Event, EventKind};
use edge::mqtt::{MqttConfig, MqttPublisher, MqttStatus};
use edge::Label;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; every wait polls and returns as soon as it is met.
const PATIENCE: Duration = Duration::from_secs(10);

/// A fresh folder for one test, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("edge-mqtt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Polls `done` until it holds; panics with `what` and the last value seen after [`PATIENCE`].
fn wait_for<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = probe();
        if done(&value) {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}; last seen: {value:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Mosquitto broker on 127.0.0.1, killed when dropped.
struct Broker {
    child: Option<Child>,
    port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// Starts a broker with `extra` configuration lines; persistence (sessions and retained
    /// messages survive a restart) lives in `dir`.
    fn start(dir: &Path, port: u16, extra: &str) -> Broker {
        let config = dir.join("mosquitto.conf");
        // `user root`: when the tests run as root, stay root so the broker can write its
        // persistence file in the scratch folder (otherwise it switches to user `mosquitto`).
        let text = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\nuser root\n{extra}\n",
            dir.display()
        );
        std::fs::write(&config, text).expect("broker config");
        let mut broker = Broker { child: None, port, config, log: dir.join("broker.log") };
        broker.start_again();
        broker
    }

    fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts (install it: .ci/deps)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                panic!("mosquitto did not start listening on {}: {}", self.port, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker the way a service manager does (SIGTERM: it saves its persistence file).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM mosquitto");
        child.wait().expect("mosquitto exits");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as `mosquitto_sub` printed it.
#[derive(Debug)]
struct Msg {
    retained: bool,
    topic: String,
    payload: String,
}

/// A `mosquitto_sub` process, QoS 1, killed when dropped.
struct Subscriber {
    child: Child,
    lines: Receiver<String>,
    /// Everything printed so far, for failure messages.
    seen: Vec<String>,
}

impl Subscriber {
    /// Subscribes to `filter` and returns once the broker acknowledged the subscription.
    fn start(port: u16, filter: &str, extra: &[&str]) -> Subscriber {
        // Line-buffered: its debug lines (the SUBACK) would otherwise wait in a pipe buffer.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-d",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-t",
                filter,
            ])
            .args(["-F", "MSG %r %t %p"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts (install mosquitto-clients: .ci/deps)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sub = Subscriber { child, lines, seen: Vec::new() };
        let deadline = Instant::now() + PATIENCE;
        while !sub.seen.iter().any(|l| l.starts_with("Subscribed")) {
            sub.read_line(deadline);
        }
        sub
    }

    fn read_line(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => self.seen.push(line),
            Err(e) => {
                panic!("mosquitto_sub: {e:?} while waiting; it printed:\n{}", self.seen.join("\n"))
            }
        }
    }

    /// The next message on `topic` (messages already printed count, in order).
    fn next_on(&mut self, topic: &str) -> Msg {
        let deadline = Instant::now() + PATIENCE;
        let mut consumed = 0;
        loop {
            while consumed < self.seen.len() {
                let line = self.seen[consumed].clone();
                consumed += 1;
                let Some(msg) = parse_msg(&line) else { continue };
                if msg.topic == topic {
                    // Drop what was looked at, so the next call continues after this message.
                    self.seen.drain(..consumed);
                    return msg;
                }
            }
            self.read_line(deadline);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_msg(line: &str) -> Option<Msg> {
    let rest = line.strip_prefix("MSG ")?;
    let (retained, rest) = rest.split_once(' ')?;
    let (topic, payload) = rest.split_once(' ')?;
    Some(Msg { retained: retained == "1", topic: topic.into(), payload: payload.into() })
}

fn event(kind: EventKind, track: u64, frame: u64) -> Event {
    Event {
        event: kind,
        time: format!("2026-11-25T04:00:{:02}.123Z", frame % 60),
        source: "folder frames/".into(),
        frame,
        track,
        bbox: [10.5, 20.0, 110.1, 140.7],
        p_fake: Some(0.1 + 0.01 * frame as f32),
        label: Some(if frame.is_multiple_of(2) { Label::Real } else { Label::Fake }),
        previous: (kind == EventKind::LabelChanged).then_some(Label::Real),
    }
}

/// The event's JSON-lines object, as `--json` prints it.
fn json_line(event: &Event) -> Value {
    serde_json::from_str(&serde_json::to_string(event).expect("serialise")).expect("parse back")
}

fn payload_json(msg: &Msg) -> Value {
    serde_json::from_str(&msg.payload)
        .unwrap_or_else(|e| panic!("payload is not JSON ({e}): {}", msg.payload))
}

fn config(port: u16, prefix: &str, client_id: &str) -> MqttConfig {
    let mut config = MqttConfig::new(&format!("127.0.0.1:{port}")).expect("address");
    config.topic_prefix = prefix.into();
    config.client_id = client_id.into();
    config
}

fn connected(publisher: &MqttPublisher) -> MqttStatus {
    wait_for("the publisher to connect", || publisher.status(), |s| s.connected)
}

#[test]
fn events_status_and_stats_reach_a_subscriber() {
    let dir = Scratch::new("events");
    let broker = Broker::start(&dir.0, free_port(), "allow_anonymous true");
    let publisher = MqttPublisher::start(config(broker.port, "fleet", "board-1")).expect("start");
    assert_eq!(publisher.events_topic(), "fleet/board-1/events");
    connected(&publisher);

    let mut sub = Subscriber::start(broker.port, "fleet/#", &[]);
    let online = sub.next_on("fleet/board-1/status");
    assert_eq!((online.payload.as_str(), online.retained), ("online", true));

    let events = [
        event(EventKind::Appeared, 1, 3),
        event(EventKind::LabelChanged, 1, 17),
        event(EventKind::Left, 1, 40),
    ];
    for e in &events {
        publisher.publish_event(e);
    }
    let stats = json!({"capture_fps": 29.9, "processed_fps": 25.1, "skipped": 12});
    publisher.publish_stats(&stats);
    for e in &events {
        let msg = sub.next_on("fleet/board-1/events");
        assert_eq!(payload_json(&msg), json_line(e));
        assert!(!msg.retained);
    }
    assert_eq!(payload_json(&sub.next_on("fleet/board-1/stats")), stats);

    let status = publisher.close(Duration::from_secs(2));
    assert_eq!(
        (status.published, status.dropped, status.queued, status.connects),
        (3, 0, 0, 1),
        "{status:?}"
    );
    assert!(!status.connected);
    assert_eq!(sub.next_on("fleet/board-1/status").payload, "offline");
    // A dashboard that subscribes later sees the board offline (retained).
    let mut late = Subscriber::start(broker.port, "fleet/+/status", &[]);
    let offline = late.next_on("fleet/board-1/status");
    assert_eq!((offline.payload.as_str(), offline.retained), ("offline", true));
}

/// A short run (a folder of a few frames) closes before the connection is even up: the queue is
/// still delivered, within the flush time.
#[test]
fn close_right_after_start_delivers_the_queue() {
    let dir = Scratch::new("quick");
    let broker = Broker::start(&dir.0, free_port(), "allow_anonymous true");
    let mut sub = Subscriber::start(broker.port, "quick/#", &[]);
    let publisher = MqttPublisher::start(config(broker.port, "quick", "board-4")).expect("start");
    let e = event(EventKind::Appeared, 1, 1);
    publisher.publish_event(&e);
    let status = publisher.close(Duration::from_secs(5));
    assert_eq!((status.published, status.queued, status.connects), (1, 0, 1), "{status:?}");
    assert_eq!(payload_json(&sub.next_on("quick/board-4/events")), json_line(&e));
    assert_eq!(sub.next_on("quick/board-4/status").payload, "offline");
}

/// Run by `last_will_announces_a_killed_board` in a child process, which it then kills.
#[test]
#[ignore = "a helper process of last_will_announces_a_killed_board"]
fn helper_publisher_until_killed() {
    let Ok(port) = std::env::var("EDGE_MQTT_TEST_PORT") else { return };
    let publisher = MqttPublisher::start(config(port.parse().expect("port"), "fleet", "doomed"))
        .expect("start");
    publisher.publish_event(&event(EventKind::Appeared, 7, 1));
    std::thread::sleep(Duration::from_secs(60));
    drop(publisher);
}

#[test]
fn last_will_announces_a_killed_board() {
    let dir = Scratch::new("will");
    let broker = Broker::start(&dir.0, free_port(), "allow_anonymous true");
    let mut sub = Subscriber::start(broker.port, "fleet/doomed/#", &[]);
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--ignored", "--exact", "helper_publisher_until_killed"])
        .env("EDGE_MQTT_TEST_PORT", broker.port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("helper process");
    assert_eq!(sub.next_on("fleet/doomed/status").payload, "online");
    assert_eq!(
        payload_json(&sub.next_on("fleet/doomed/events")),
        json_line(&event(EventKind::Appeared, 7, 1))
    );

    // SIGKILL: no `offline` from the publisher, so this one is the broker's last will.
    child.kill().expect("kill the helper");
    child.wait().expect("helper exits");
    assert_eq!(sub.next_on("fleet/doomed/status").payload, "offline");
    let mut late = Subscriber::start(broker.port, "fleet/doomed/status", &[]);
    let offline = late.next_on("fleet/doomed/status");
    assert_eq!((offline.payload.as_str(), offline.retained), ("offline", true));
}

/// The events published while the broker is down are queued and delivered after it is back.
#[test]
fn reconnects_after_the_broker_restarts() {
    let dir = Scratch::new("restart");
    let mut broker = Broker::start(&dir.0, free_port(), "allow_anonymous true");
    // A persistent session (-c): the broker keeps what arrives for it while it is away, so the
    // test does not race the publisher's reconnection.
    let watcher = ["-c", "-i", "watcher"];
    let mut sub = Subscriber::start(broker.port, "restart/#", &watcher);
    let publisher = MqttPublisher::start(config(broker.port, "restart", "board-2")).expect("start");
    assert_eq!(sub.next_on("restart/board-2/status").payload, "online");
    let events: Vec<Event> = (0..3).map(|i| event(EventKind::Appeared, i + 1, i * 10)).collect();
    publisher.publish_event(&events[0]);
    assert_eq!(payload_json(&sub.next_on("restart/board-2/events")), json_line(&events[0]));
    drop(sub);

    broker.stop();
    wait_for("the publisher to notice the broker is gone", || publisher.status(), |s| !s.connected);
    publisher.publish_event(&events[1]);
    let status = publisher.status();
    assert_eq!((status.queued, status.published, status.dropped), (1, 1, 0), "{status:?}");

    broker.start_again();
    wait_for(
        "reconnection and delivery",
        || publisher.status(),
        |s| s.connects == 2 && s.published == 2,
    );
    publisher.publish_event(&events[2]);
    let status = wait_for("delivery", || publisher.status(), |s| s.published == 3);
    assert_eq!((status.dropped, status.queued), (0, 0), "{status:?}");
    let error = status.last_error.expect("the lost connection is recorded");
    assert!(error.contains(&format!("127.0.0.1:{}", broker.port)), "{error}");

    let mut sub = Subscriber::start(broker.port, "restart/#", &watcher);
    for e in &events[1..] {
        assert_eq!(payload_json(&sub.next_on("restart/board-2/events")), json_line(e));
    }
}

/// A board that boots before its broker: start succeeds, events queue (the oldest dropped beyond
/// the capacity), and the queue is delivered once the broker comes up.
#[test]
fn unreachable_broker_at_start_queues_and_drops_the_oldest() {
    let dir = Scratch::new("unreachable");
    let mut broker = Broker::start(&dir.0, free_port(), "allow_anonymous true");
    let watcher = ["-c", "-i", "late-watcher"];
    drop(Subscriber::start(broker.port, "boot/#", &watcher));
    broker.stop();

    let mut config = config(broker.port, "boot", "board-3");
    config.queue_capacity = 3;
    let publisher = MqttPublisher::start(config).expect("start without a broker");
    let events: Vec<Event> = (0..5).map(|i| event(EventKind::Appeared, i + 1, i)).collect();
    for e in &events {
        publisher.publish_event(e);
    }
    let status = wait_for(
        "a connection error",
        || publisher.status(),
        |s| s.last_error.is_some() && s.dropped == 2,
    );
    assert_eq!((status.connected, status.queued, status.published), (false, 3, 0), "{status:?}");
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains(&format!("cannot connect to MQTT broker 127.0.0.1:{}", broker.port)),
        "{error}"
    );

    broker.start_again();
    let status =
        wait_for("delivery after the broker came up", || publisher.status(), |s| s.published == 3);
    assert_eq!((status.dropped, status.queued, status.connects), (2, 0, 1), "{status:?}");
    let mut sub = Subscriber::start(broker.port, "boot/#", &watcher);
    for e in &events[2..] {
        assert_eq!(payload_json(&sub.next_on("boot/board-3/events")), json_line(e));
    }
}

#[test]
fn credentials_wrong_right_and_unreadable() {
    let dir = Scratch::new("credentials");
    let passwd = dir.0.join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["board", "s3cret"])
        .status();
    assert!(made.is_ok_and(|s| s.success()), "mosquitto_passwd (package mosquitto) failed");
    let broker = Broker::start(
        &dir.0,
        free_port(),
        &format!("allow_anonymous false\npassword_file {}", passwd.display()),
    );

    let mut wrong = config(broker.port, "auth", "board-bad");
    let wrong_file = dir.write("wrong", "board:not-the-password\n");
    wrong.credentials_file = Some(wrong_file.clone());
    let rejected = MqttPublisher::start(wrong).expect("start");
    rejected.publish_event(&event(EventKind::Appeared, 1, 1));
    let status = wait_for("the broker's refusal", || rejected.status(), |s| s.last_error.is_some());
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("refused the connection: not authorized"), "{error}");
    assert!(
        error.contains("user `board`") && error.contains(&wrong_file.display().to_string()),
        "{error}"
    );
    assert!(!error.contains("not-the-password"), "{error}");
    assert_eq!((status.connected, status.connects, status.queued), (false, 0, 1));

    // The two-line format; a subscriber with the same account sees it online.
    let mut right = config(broker.port, "auth", "board-ok");
    right.credentials_file = Some(dir.write("right", "board\ns3cret\n"));
    let accepted = MqttPublisher::start(right).expect("start");
    connected(&accepted);
    let mut sub = Subscriber::start(broker.port, "auth/#", &["-u", "board", "-P", "s3cret"]);
    assert_eq!(sub.next_on("auth/board-ok/status").payload, "online");

    // Unreadable or empty files fail at start-up, naming the file.
    let mut missing = config(broker.port, "auth", "board-x");
    let missing_file = dir.0.join("no-such-file");
    missing.credentials_file = Some(missing_file.clone());
    let e = format!("{:#}", MqttPublisher::start(missing).err().expect("missing file is an error"));
    assert!(e.contains(&missing_file.display().to_string()) && e.contains("cannot read"), "{e}");
    let mut empty = config(broker.port, "auth", "board-x");
    let empty_file = dir.write("empty", "\n");
    empty.credentials_file = Some(empty_file.clone());
    let e = format!("{:#}", MqttPublisher::start(empty).err().expect("empty file is an error"));
    assert!(e.contains(&empty_file.display().to_string()) && e.contains("empty"), "{e}");

    let status = rejected.close(Duration::from_millis(100));
    assert_eq!(
        (status.published, status.queued),
        (0, 1),
        "the refused publisher delivered nothing"
    );
}
