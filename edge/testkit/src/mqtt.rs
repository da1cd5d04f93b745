//! A Mosquitto broker on loopback and a `mosquitto_sub` subscriber, for the MQTT tests (the
//! publisher in the library and the `edge` binary). Needs `mosquitto` and `mosquitto-clients`
//! (`.ci/deps`).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; every wait polls and returns as soon as it is met.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A loopback port no one listens on, for a broker. Taken below Linux's ephemeral range
/// (32768–60999), where the kernel never puts the outgoing sockets of clients, so a broker
/// restarted on its port cannot find it taken by a connection made meanwhile; each process starts
/// at its own offset and never hands out the same port twice.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(997) % COUNT;
    for _ in 0..COUNT {
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

/// Polls `done` until it holds; panics with `what` and the last value seen after [`PATIENCE`].
pub fn wait_for<T: std::fmt::Debug>(
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
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// Starts a broker with `extra` configuration lines; persistence (sessions and retained
    /// messages survive a restart) lives in `dir`.
    pub fn start(dir: &Path, port: u16, extra: &str) -> Broker {
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

    /// A broker on a free port that accepts only `user` with `password` (a `mosquitto_passwd` file
    /// in `dir`).
    pub fn with_password(dir: &Path, user: &str, password: &str) -> Broker {
        let passwd = dir.join("passwd");
        let made = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args([user, password])
            .status();
        assert!(made.is_ok_and(|s| s.success()), "mosquitto_passwd (package mosquitto) failed");
        let extra = format!("allow_anonymous false\npassword_file {}", passwd.display());
        Broker::start(dir, free_port(), &extra)
    }

    pub fn start_again(&mut self) {
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
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM mosquitto");
        child.wait().expect("mosquitto exits");
    }

    pub fn log_text(&self) -> String {
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
pub struct Msg {
    pub retained: bool,
    pub topic: String,
    pub payload: String,
}

impl Msg {
    /// The payload as JSON; panics with the payload when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or_else(|e| {
            panic!("payload on {} is not JSON ({e}): {}", self.topic, self.payload)
        })
    }
}

/// A `mosquitto_sub` process, QoS 1, killed when dropped.
pub struct Subscriber {
    child: Child,
    lines: Receiver<String>,
    /// Everything printed so far, for failure messages.
    seen: Vec<String>,
}

impl Subscriber {
    /// Subscribes to `filter` and returns once the broker acknowledged the subscription.
    pub fn start(port: u16, filter: &str, extra: &[&str]) -> Subscriber {
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
    pub fn next_on(&mut self, topic: &str) -> Msg {
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

impl Subscriber {
    /// Reads the JSON messages on `topic` until `expected` has arrived in this order, as QoS 1
    /// promises: at least once. A repeat of a message already seen here or delivered before
    /// (`earlier`) is a legal redelivery and is counted; any other message out of place panics.
    /// Returns the number of repeats.
    pub fn in_order(
        &mut self,
        topic: &str,
        earlier: &[serde_json::Value],
        expected: &[serde_json::Value],
    ) -> usize {
        let (mut next, mut repeats) = (0, 0);
        while next < expected.len() {
            let got = self.next_on(topic).json();
            if got == expected[next] {
                next += 1;
            } else if earlier.contains(&got) || expected[..next].contains(&got) {
                repeats += 1;
            } else {
                panic!("on {topic}: expected {} next, got {got}", expected[next]);
            }
        }
        repeats
    }

    /// The messages printed so far (and not yet taken by [`Subscriber::next_on`]), without waiting.
    pub fn printed(&mut self) -> Vec<Msg> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().filter_map(|l| parse_msg(l)).collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_msg(line: &str) -> Option<Msg> {
    let rest = line.strip_prefix("MSG ")?;
    let (retained, rest) = rest.split_once(' ')?;
    let (topic, payload) = rest.split_once(' ')?;
    Some(Msg { retained: retained == "1", topic: topic.into(), payload: payload.into() })
}
