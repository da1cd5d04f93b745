//! Publishes the real-time loop's events to an MQTT broker, for fleets of boards (the convention
//! Frigate and Home Assistant users already run).
//!
//! Topics, under `<prefix>/<client_id>/`:
//! - `events`: one [`Event`] per message, the same JSON object as a `--json` line (QoS 1 by default);
//! - `status`: `online` (retained) once connected, `offline` (retained) on a clean close, and the
//!   same `offline` as the connection's last will, so the broker announces a board that died;
//! - `stats`: whatever JSON the caller passes to [`MqttPublisher::publish_stats`] (QoS 0, only the
//!   newest is kept while the broker is away).
//!
//! The loop must never wait for the network: [`MqttPublisher::publish_event`] appends to a bounded
//! queue and returns; one thread owns the connection, reconnects with back-off when the broker goes
//! away, and delivers the queue at least once (an event in flight when the connection dropped is
//! sent again). When the queue is full the oldest event is dropped and counted.
//!
//! Start-up: a malformed address, client id, topic prefix or an unreadable credentials file is an
//! error from [`MqttPublisher::start`]; a broker that is down (or refuses the credentials) is not:
//! a camera board keeps working, logs the cause on stderr (once, not at every retry) and keeps
//! retrying, and [`MqttPublisher::status`] reports it.
//!
//! The protocol is MQTT 3.1.1, written here rather than taken from a client crate: a publisher
//! needs five packets (CONNECT/CONNACK, PUBLISH/PUBACK, PINGREQ/PINGRESP, DISCONNECT), and the
//! well-kept clients (rumqttc) bring an async runtime (tokio and ~25 crates) to the board, while
//! the queue policy above would still be ours.

use crate::events::{Event, EventSink};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The MQTT port without TLS.
pub const DEFAULT_PORT: u16 = 1883;
/// Topics start with this unless `--mqtt-topic` says otherwise.
pub const DEFAULT_TOPIC_PREFIX: &str = "deepfake-edge";
/// Events kept while the broker is away (a few minutes of a busy camera).
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;

const ONLINE: &[u8] = b"online";
const OFFLINE: &[u8] = b"offline";
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lasted this long was healthy: the next reconnection starts from the first back-off.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);
/// Longest wait for the broker's answer (CONNACK, PUBACK, PINGRESP) before the link counts as dead.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection is checked for a broker that closed it.
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// What dropping the publisher spends delivering the queue before `offline`.
const DROP_FLUSH: Duration = Duration::from_secs(2);

/// Delivery guarantee of the events topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QoS {
    /// Fire and forget.
    AtMostOnce = 0,
    /// Acknowledged by the broker; sent again after a reconnection if it was not.
    AtLeastOnce = 1,
}

/// Where and as whom to publish. Build it with [`MqttConfig::new`] from `--mqtt host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// First topic level; `deepfake-edge` by default.
    pub topic_prefix: String,
    /// MQTT client id and second topic level; the host name by default.
    pub client_id: String,
    /// `user:password` on one line, or the user on the first line and the password on the second.
    pub credentials_file: Option<PathBuf>,
    /// QoS of the events (status is always QoS 1, stats QoS 0).
    pub qos: QoS,
    /// MQTT keep-alive: the broker publishes the last will after 1.5× this without a packet.
    pub keep_alive: Duration,
    /// Events kept while the broker is unreachable; beyond it the oldest are dropped.
    pub queue_capacity: usize,
}

impl MqttConfig {
    /// A configuration for the broker at `address` (`host`, `host:port`, `[v6]:port`) with the
    /// defaults for everything else.
    pub fn new(address: &str) -> Result<Self> {
        let (host, port) = parse_address(address)?;
        Ok(MqttConfig {
            host,
            port,
            topic_prefix: DEFAULT_TOPIC_PREFIX.to_string(),
            client_id: default_client_id(),
            credentials_file: None,
            qos: QoS::AtLeastOnce,
            keep_alive: Duration::from_secs(30),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        })
    }

    /// `<prefix>/<client_id>/events`
    pub fn events_topic(&self) -> String {
        self.topic("events")
    }

    /// `<prefix>/<client_id>/status`
    pub fn status_topic(&self) -> String {
        self.topic("status")
    }

    /// `<prefix>/<client_id>/stats`
    pub fn stats_topic(&self) -> String {
        self.topic("stats")
    }

    fn topic(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.topic_prefix.trim_end_matches('/'), self.client_id)
    }

    /// Checks what the broker would reject or what would make the topics ambiguous.
    fn validate(&self) -> Result<()> {
        let prefix = self.topic_prefix.trim_end_matches('/');
        if prefix.is_empty() || prefix.starts_with('/') || prefix.contains(['+', '#', '\0']) {
            bail!(
                "MQTT topic prefix `{}` is not usable: it must be non-empty, not start with `/`, \
                 and contain no `+`, `#`",
                self.topic_prefix
            );
        }
        let id = &self.client_id;
        if id.is_empty() || id.contains(['/', '+', '#', '\0']) || id.len() > 65535 {
            bail!("MQTT client id `{id}` is not usable: it must be non-empty and contain no `/`, `+`, `#`");
        }
        if self.status_topic().len() > usize::from(u16::MAX) {
            bail!("MQTT topic prefix and client id are too long for a topic (65535 bytes at most)");
        }
        if self.port == 0 {
            bail!("MQTT port 0 is not a port");
        }
        if self.queue_capacity == 0 {
            bail!("MQTT queue capacity must be at least 1");
        }
        if self.keep_alive.as_secs() == 0 || self.keep_alive.as_secs() > u64::from(u16::MAX) {
            bail!("MQTT keep-alive must be between 1 s and 65535 s");
        }
        Ok(())
    }
}

/// Splits `host`, `host:port` or `[ipv6]:port` (port 1883 when absent).
pub fn parse_address(address: &str) -> Result<(String, u16)> {
    let bad = |why: &str| anyhow::anyhow!("MQTT broker address `{address}`: {why}");
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing `]`"))?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or_else(|| bad("expected `:port` after `]`"))?),
            ),
        }
    } else {
        match address.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(bad("an IPv6 address must be written `[address]:port`"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad("no host name"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad(&format!("port `{p}` is not a number from 1 to 65535"))),
        },
    };
    Ok((host.to_string(), port))
}

/// The host name (`/proc/sys/kernel/hostname`), or `edge-<pid>` when it is unreadable or unusable
/// in a topic.
pub fn default_client_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|h| {
            !h.is_empty() && !h.contains(['/', '+', '#', '\0']) && !h.contains(char::is_whitespace)
        })
        .unwrap_or_else(|| format!("edge-{}", std::process::id()))
}

/// A user name and password for the broker. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"…").finish()
    }
}

impl Credentials {
    /// Reads `user:password` (one line; the password may contain `:`) or the user on the first
    /// line and the password on the second. Errors name the file, never its content.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("MQTT credentials file {}: cannot read it", path.display()))?;
        Self::parse(&text).with_context(|| format!("MQTT credentials file {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .collect();
        let (user, password) = match lines.as_slice() {
            [] => bail!("it is empty"),
            [line] => line.split_once(':').ok_or_else(|| {
                anyhow::anyhow!("expected `user:password`, or the user and the password on two lines")
            })?,
            [user, password] => (*user, *password),
            _ => bail!("expected `user:password`, or the user and the password on two lines; it has more lines"),
        };
        let user = user.trim();
        if user.is_empty() {
            bail!("the user name is empty");
        }
        if user.len() > usize::from(u16::MAX) || password.len() > usize::from(u16::MAX) {
            bail!("the user name or password is longer than MQTT allows (65535 bytes)");
        }
        Ok(Credentials { user: user.to_string(), password: password.to_string() })
    }
}

/// What the publisher has done so far, for statistics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MqttStatus {
    /// A session with the broker is open now.
    pub connected: bool,
    /// Successful connections (CONNACK accepted) since start.
    pub connects: u64,
    /// Events delivered (acknowledged by the broker at QoS 1, written at QoS 0).
    pub published: u64,
    /// Events dropped because the queue was full (the oldest go first).
    pub dropped: u64,
    /// Events waiting for the broker, including one in flight.
    pub queued: usize,
    /// The last connection error, kept after a reconnection for the record.
    pub last_error: Option<String>,
}

/// Publishes events, status and statistics to an MQTT broker without ever blocking the caller.
/// Dropping it delivers what is queued (for up to 2 s), publishes `offline` and disconnects.
pub struct MqttPublisher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    events_topic: String,
}

impl MqttPublisher {
    /// Checks the configuration, reads the credentials and starts the network thread; returns at
    /// once, whether the broker is up or not.
    pub fn start(config: MqttConfig) -> Result<Self> {
        config.validate()?;
        let credentials =
            config.credentials_file.as_deref().map(Credentials::from_file).transpose()?;
        let shared = Arc::new(Shared::new(config.queue_capacity));
        let events_topic = config.events_topic();
        let link = Link { config, credentials };
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || {
                link.run(&thread_shared);
                thread_shared.lock().finished = true;
                thread_shared.wake.notify_all();
            })
            .context("cannot start the MQTT thread")?;
        Ok(MqttPublisher { shared, thread: Some(thread), events_topic })
    }

    /// Queues one event (as its JSON-lines object) and returns at once. When the queue is full,
    /// the oldest event is dropped and counted in [`MqttStatus::dropped`].
    pub fn publish_event(&self, event: &Event) {
        match serde_json::to_vec(event) {
            Ok(payload) => self.shared.push(payload),
            // Cannot happen for `Event` (no maps, no non-string keys); count it rather than panic.
            Err(_) => self.shared.lock().status.dropped += 1,
        }
    }

    /// Publishes `stats` (QoS 0, not retained) on the stats topic. Only the newest is kept while
    /// the broker is away: statistics are a snapshot, not a history.
    pub fn publish_stats(&self, stats: &serde_json::Value) {
        if let Ok(payload) = serde_json::to_vec(stats) {
            self.shared.lock().stats = Some(payload);
            self.shared.wake.notify_all();
        }
    }

    /// A snapshot of the counters and the connection state.
    pub fn status(&self) -> MqttStatus {
        let state = self.shared.lock();
        let mut status = state.status.clone();
        status.queued += state.queue.len();
        status
    }

    /// The topic events go to.
    pub fn events_topic(&self) -> &str {
        &self.events_topic
    }

    /// Delivers what is queued for up to `flush`, publishes the retained `offline` status and
    /// disconnects. Returns the final counters: `queued` > 0 means events that were not delivered.
    /// Gives up waiting for the network thread a few seconds after `flush`.
    pub fn close(mut self, flush: Duration) -> MqttStatus {
        self.shut_down(flush);
        self.status()
    }

    fn shut_down(&mut self, flush: Duration) {
        let Some(thread) = self.thread.take() else { return };
        let give_up = Instant::now() + flush + REPLY_TIMEOUT + Duration::from_secs(1);
        let mut state = self.shared.lock();
        state.stop = Some(Instant::now() + flush);
        self.shared.wake.notify_all();
        while !state.finished {
            let now = Instant::now();
            if now >= give_up {
                // The broker stopped answering mid-write; leave the thread to its timeouts.
                return;
            }
            state = match self.shared.wake.wait_timeout(state, give_up - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(state);
        let _ = thread.join();
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        self.shut_down(DROP_FLUSH);
    }
}

impl EventSink for MqttPublisher {
    /// Never fails: a broker that is away costs queued or dropped events, not the loop.
    fn send(&mut self, event: &Event) -> Result<()> {
        self.publish_event(event);
        Ok(())
    }
}

/// One queued event: its JSON, and whether it was sent before (the DUP flag on a resend).
struct Message {
    payload: Vec<u8>,
    sent_before: bool,
}

struct State {
    queue: VecDeque<Message>,
    stats: Option<Vec<u8>>,
    /// Set by close: deliver the queue until this instant, then say `offline` and disconnect.
    stop: Option<Instant>,
    finished: bool,
    status: MqttStatus,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
}

/// What the network thread does next.
enum Next {
    Event(Message),
    Stats(Vec<u8>),
    Idle,
    Stop,
}

impl Shared {
    /// An empty queue holding at most `capacity` events.
    fn new(capacity: usize) -> Shared {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                stats: None,
                stop: None,
                finished: false,
                status: MqttStatus::default(),
            }),
            wake: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue inconsistent (push/pop only).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, payload: Vec<u8>) {
        let mut state = self.lock();
        // The network thread's in-flight event counts against the capacity too.
        let in_flight = state.status.queued;
        while !state.queue.is_empty() && state.queue.len() + in_flight >= self.capacity {
            state.queue.pop_front();
            state.status.dropped += 1;
        }
        if state.queue.len() + in_flight >= self.capacity {
            // Only the in-flight event is left and the capacity is 1: drop the new one.
            state.status.dropped += 1;
            return;
        }
        state.queue.push_back(Message { payload, sent_before: false });
        drop(state);
        self.wake.notify_all();
    }

    /// Waits up to `timeout` for something to send. Events go first; `Stop` once closing and
    /// either the queue is empty or the flush time is over.
    fn next(&self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            let flushing_over = state.stop.is_some_and(|t| Instant::now() >= t);
            if !flushing_over {
                if let Some(message) = state.queue.pop_front() {
                    state.status.queued = 1;
                    return Next::Event(message);
                }
                if let Some(stats) = state.stats.take() {
                    return Next::Stats(stats);
                }
            }
            if state.stop.is_some() {
                return Next::Stop;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Idle;
            }
            state = match self.wake.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The in-flight event was acknowledged.
    fn delivered(&self) {
        let mut state = self.lock();
        state.status.queued = 0;
        state.status.published += 1;
    }

    /// The connection dropped with an event in flight: it goes back to the head of the queue.
    fn requeue(&self, mut message: Message) {
        let mut state = self.lock();
        state.status.queued = 0;
        message.sent_before = true;
        if state.queue.len() >= self.capacity {
            // It is the oldest; the queue filled up behind it.
            state.status.dropped += 1;
        } else {
            state.queue.push_front(message);
        }
    }

    /// Closing, and nothing is left to deliver or the flush time is over.
    fn give_up(&self) -> bool {
        let state = self.lock();
        let empty = state.queue.is_empty() && state.stats.is_none();
        state.stop.is_some_and(|flush_end| empty || Instant::now() >= flush_end)
    }

    /// Sleeps `duration`, or until the flush time is over when closing.
    fn back_off(&self, duration: Duration) {
        let mut deadline = Instant::now() + duration;
        let mut state = self.lock();
        loop {
            if let Some(flush_end) = state.stop {
                deadline = deadline.min(flush_end);
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            state = match self.wake.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn set_connected(&self, connected: bool) {
        let mut state = self.lock();
        state.status.connected = connected;
        if connected {
            state.status.connects += 1;
        }
    }

    fn set_error(&self, error: String) {
        self.lock().status.last_error = Some(error);
    }
}

/// The network side: configuration and credentials, owned by the thread.
struct Link {
    config: MqttConfig,
    credentials: Option<Credentials>,
}

impl Link {
    fn broker(&self) -> String {
        if self.config.host.contains(':') {
            format!("[{}]:{}", self.config.host, self.config.port)
        } else {
            format!("{}:{}", self.config.host, self.config.port)
        }
    }

    /// Connects, serves, reconnects with back-off, until close.
    fn run(&self, shared: &Shared) {
        let mut backoff = FIRST_BACKOFF;
        let mut in_flight: Option<Message> = None;
        // A broker that stays down (or keeps refusing the credentials) is logged once, not at
        // every retry; a new cause, or the same after a connection, is logged again.
        let mut logged: Option<String> = None;
        loop {
            // Closing before the first connection still tries to deliver the queue, within the
            // flush time (a short run that ends before the broker answered).
            if shared.give_up() {
                break;
            }
            let error = match self.connect() {
                Ok(mut session) => {
                    shared.set_connected(true);
                    logged = None;
                    eprintln!(
                        "edge: mqtt: connected to {} as `{}`, publishing to {}",
                        self.broker(),
                        self.config.client_id,
                        self.config.events_topic()
                    );
                    let started = Instant::now();
                    let result = session.serve(shared, &mut in_flight);
                    shared.set_connected(false);
                    if let Some(message) = in_flight.take() {
                        shared.requeue(message);
                    }
                    if started.elapsed() >= HEALTHY_SESSION {
                        backoff = FIRST_BACKOFF;
                    }
                    match result {
                        Ok(()) => break,
                        Err(e) => format!("connection to {} lost: {e:#}", self.broker()),
                    }
                }
                Err(e) => format!("{e:#}"),
            };
            if logged.as_ref() != Some(&error) {
                eprintln!("edge: mqtt: {error}; events are queued, retrying with back-off");
                logged = Some(error.clone());
            }
            shared.set_error(error);
            shared.back_off(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Opens the TCP connection and the MQTT session (CONNECT with the last will, CONNACK).
    fn connect(&self) -> Result<Session<'_>> {
        let broker = self.broker();
        let addresses: Vec<_> = (self.config.host.as_str(), self.config.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve MQTT broker {broker}"))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for address in &addresses {
            match TcpStream::connect_timeout(address, REPLY_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            let cause = last.map_or("no address".to_string(), |e| e.to_string());
            bail!("cannot connect to MQTT broker {broker}: {cause}");
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let mut session =
            Session { stream, next_id: 0, last_write: Instant::now(), config: &self.config };
        let packet = connect_packet(
            &self.config.client_id,
            self.config.keep_alive.as_secs() as u16,
            &self.config.status_topic(),
            OFFLINE,
            self.credentials.as_ref(),
        );
        session.write(&packet).with_context(|| format!("MQTT broker {broker}: sending CONNECT"))?;
        let (kind, body) = session
            .read_packet()
            .with_context(|| format!("MQTT broker {broker}: waiting for CONNACK"))?;
        if kind != CONNACK || body.len() != 2 {
            bail!("MQTT broker {broker} answered CONNECT with packet type {kind}, not CONNACK");
        }
        if body[1] != 0 {
            let why = match body[1] {
                1 => "unacceptable protocol version (MQTT 3.1.1 needed)",
                2 => "client id rejected",
                3 => "server unavailable",
                4 => "bad user name or password",
                5 => "not authorized",
                _ => "unknown reason",
            };
            let who = match (&self.credentials, &self.config.credentials_file) {
                (Some(c), Some(file)) => format!(" (user `{}` from {})", c.user, file.display()),
                _ => " (no credentials given)".to_string(),
            };
            bail!("MQTT broker {broker} refused the connection: {why}{who}");
        }
        Ok(session)
    }
}

/// An open MQTT session.
struct Session<'a> {
    stream: TcpStream,
    next_id: u16,
    last_write: Instant,
    config: &'a MqttConfig,
}

impl Session<'_> {
    /// Publishes `online`, then the queue as it fills, pings when idle; on close, `offline` and
    /// DISCONNECT. Returns an error when the connection breaks (the caller reconnects).
    fn serve(&mut self, shared: &Shared, in_flight: &mut Option<Message>) -> Result<()> {
        let status_topic = self.config.status_topic();
        self.publish(&status_topic, ONLINE, QoS::AtLeastOnce, true, false)
            .context("publishing `online`")?;
        let events_topic = self.config.events_topic();
        let stats_topic = self.config.stats_topic();
        let ping_every = self.config.keep_alive / 2;
        loop {
            match shared.next(IDLE_CHECK) {
                Next::Event(message) => {
                    let message = in_flight.insert(message);
                    self.publish(
                        &events_topic,
                        &message.payload,
                        self.config.qos,
                        false,
                        message.sent_before,
                    )?;
                    *in_flight = None;
                    shared.delivered();
                }
                Next::Stats(payload) => {
                    self.publish(&stats_topic, &payload, QoS::AtMostOnce, false, false)?;
                }
                Next::Idle => {
                    self.check_open()?;
                    if self.last_write.elapsed() >= ping_every {
                        self.write(&[PINGREQ << 4, 0])?;
                        self.await_reply(PINGRESP, None)?;
                    }
                }
                Next::Stop => {
                    self.publish(&status_topic, OFFLINE, QoS::AtLeastOnce, true, false)
                        .context("publishing `offline`")?;
                    // DISCONNECT tells the broker not to send the last will.
                    self.write(&[DISCONNECT << 4, 0])?;
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
        }
    }

    fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        dup: bool,
    ) -> Result<()> {
        let id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => {
                self.next_id = self.next_id.checked_add(1).unwrap_or(1);
                Some(self.next_id)
            }
        };
        self.write(&publish_packet(topic, payload, qos, retain, dup, id))?;
        if let Some(id) = id {
            self.await_reply(PUBACK, Some(id))?;
        }
        Ok(())
    }

    fn write(&mut self, packet: &[u8]) -> Result<()> {
        self.stream.write_all(packet)?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Reads packets until one of type `kind` (with packet id `id`) arrives; others are skipped.
    fn await_reply(&mut self, kind: u8, id: Option<u16>) -> Result<()> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let (got, body) = self.read_packet()?;
            let id_matches =
                id.is_none_or(|id| body.len() >= 2 && u16::from_be_bytes([body[0], body[1]]) == id);
            if got == kind && id_matches {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("no reply from the broker within {} s", REPLY_TIMEOUT.as_secs());
            }
        }
    }

    /// One packet: its type (the high nibble of the first byte) and its body.
    fn read_packet(&mut self) -> Result<(u8, Vec<u8>)> {
        let mut byte = [0u8; 1];
        self.read_exact(&mut byte)?;
        let kind = byte[0] >> 4;
        let mut length = 0usize;
        for shift in (0..4).map(|i| 7 * i) {
            self.read_exact(&mut byte)?;
            length |= usize::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                let mut body = vec![0u8; length];
                self.read_exact(&mut body)?;
                return Ok((kind, body));
            }
        }
        bail!("the broker sent a malformed packet length")
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.stream.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => anyhow::anyhow!("the broker closed the connection"),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                anyhow::anyhow!("no reply from the broker within {} s", REPLY_TIMEOUT.as_secs())
            }
            _ => e.into(),
        })
    }

    /// Notices, while idle, a broker that closed the connection (it went down, or took over our
    /// client id for another board), without waiting for the next ping.
    fn check_open(&mut self) -> Result<()> {
        self.stream.set_nonblocking(true)?;
        let mut byte = [0u8; 1];
        let peeked = self.stream.peek(&mut byte);
        self.stream.set_nonblocking(false)?;
        match peeked {
            Ok(0) => bail!("the broker closed the connection"),
            // Something unsolicited (a late PINGRESP): read and skip it.
            Ok(_) => self.read_packet().map(|_| ()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

// MQTT 3.1.1 control packet types.
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;

/// The variable-length "remaining length" of a fixed header (1 to 4 bytes, 7 bits each).
fn encode_length(mut length: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            break;
        }
    }
}

/// A length-prefixed field (strings and binary data alike; lengths were checked to fit in u16).
fn put_field(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first_byte);
    encode_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// CONNECT with a clean session, the retained QoS 1 last will, and the credentials if any.
fn connect_packet(
    client_id: &str,
    keep_alive_s: u16,
    will_topic: &str,
    will: &[u8],
    credentials: Option<&Credentials>,
) -> Vec<u8> {
    let mut body = Vec::new();
    put_field(b"MQTT", &mut body);
    body.push(4); // protocol level 3.1.1
    let mut flags = 0x02 | 0x04 | (1 << 3) | 0x20; // clean session, will, will QoS 1, will retain
    if credentials.is_some() {
        flags |= 0x80 | 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&keep_alive_s.to_be_bytes());
    put_field(client_id.as_bytes(), &mut body);
    put_field(will_topic.as_bytes(), &mut body);
    put_field(will, &mut body);
    if let Some(c) = credentials {
        put_field(c.user.as_bytes(), &mut body);
        put_field(c.password.as_bytes(), &mut body);
    }
    packet(CONNECT << 4, &body)
}

fn publish_packet(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    id: Option<u16>,
) -> Vec<u8> {
    let first = (PUBLISH << 4) | (u8::from(dup) << 3) | ((qos as u8) << 1) | u8::from(retain);
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
    put_field(topic.as_bytes(), &mut body);
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(first, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_uses_the_spec_encoding() {
        // The boundary values of MQTT 3.1.1, table 2.4.
        for (length, bytes) in [
            (0usize, vec![0x00]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_151, vec![0xff, 0xff, 0x7f]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
            (268_435_455, vec![0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            encode_length(length, &mut out);
            assert_eq!(out, bytes, "length {length}");
        }
    }

    #[test]
    fn connect_packet_carries_will_and_credentials() {
        let c = Credentials { user: "u".into(), password: "pw".into() };
        let p = connect_packet("id", 30, "t/s", b"offline", Some(&c));
        let mut expected = vec![0x10, 0];
        expected.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0b1110_1110, 0, 30]);
        expected.extend_from_slice(&[0, 2, b'i', b'd', 0, 3, b't', b'/', b's', 0, 7]);
        expected.extend_from_slice(b"offline");
        expected.extend_from_slice(&[0, 1, b'u', 0, 2, b'p', b'w']);
        expected[1] = (expected.len() - 2) as u8;
        assert_eq!(p, expected);
        // Without credentials the user and password flags are clear.
        assert_eq!(connect_packet("id", 30, "t/s", b"offline", None)[9], 0b0010_1110);
    }

    #[test]
    fn publish_packet_sets_flags_and_packet_id() {
        let p = publish_packet("a/b", b"{}", QoS::AtLeastOnce, true, true, Some(258));
        assert_eq!(p, vec![0x3b, 9, 0, 3, b'a', b'/', b'b', 1, 2, b'{', b'}']);
        let p = publish_packet("a", b"x", QoS::AtMostOnce, false, false, None);
        assert_eq!(p, vec![0x30, 4, 0, 1, b'a', b'x']);
    }

    #[test]
    fn addresses_parse_with_default_port() {
        assert_eq!(parse_address("broker.lan").unwrap(), ("broker.lan".into(), 1883));
        assert_eq!(parse_address("10.0.0.2:1884").unwrap(), ("10.0.0.2".into(), 1884));
        assert_eq!(parse_address("[::1]:8883").unwrap(), ("::1".into(), 8883));
        assert_eq!(parse_address("[fe80::1]").unwrap(), ("fe80::1".into(), 1883));
        for bad in [
            "",
            ":1883",
            "host:",
            "host:0",
            "host:70000",
            "host:x",
            "::1:1883",
            "[::1",
            "[::1]1883",
        ] {
            let e = parse_address(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn credentials_in_either_format_and_password_never_shown() {
        let c = Credentials::parse("board:s3cr:et\n").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("board", "s3cr:et"));
        let c = Credentials::parse("board\r\nse cret\r\n").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("board", "se cret"));
        assert!(!format!("{c:?}").contains("se cret"));
        for bad in ["", "\n\n", "no-colon\n", ":pw\n", "a\nb\nc\n"] {
            assert!(Credentials::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_file_errors_name_the_file_not_the_password() {
        let dir = std::env::temp_dir().join(format!("edge-mqtt-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing");
        let e = format!("{:#}", Credentials::from_file(&missing).unwrap_err());
        assert!(e.contains(&missing.display().to_string()) && e.contains("cannot read"), "{e}");
        let bad = dir.join("bad");
        std::fs::write(&bad, "onlyapassword\n").unwrap();
        let e = format!("{:#}", Credentials::from_file(&bad).unwrap_err());
        assert!(e.contains(&bad.display().to_string()) && !e.contains("onlyapassword"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_rejects_unusable_topics() {
        let mut c = MqttConfig::new("localhost").unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.events_topic(), format!("deepfake-edge/{}/events", c.client_id));
        c.topic_prefix = "home/cams/".into();
        assert_eq!(c.status_topic(), format!("home/cams/{}/status", c.client_id));
        for prefix in ["", "/", "a/+", "#"] {
            c.topic_prefix = prefix.into();
            assert!(c.validate().is_err(), "{prefix}");
        }
        c.topic_prefix = "p".into();
        for id in ["", "a/b", "a+", "#"] {
            c.client_id = id.into();
            assert!(c.validate().is_err(), "{id}");
        }
    }

    #[test]
    fn full_queue_drops_the_oldest() {
        let shared = Shared::new(3);
        for i in 0..5u8 {
            shared.push(vec![i]);
        }
        let left: Vec<u8> = shared.lock().queue.iter().map(|m| m.payload[0]).collect();
        assert_eq!(left, [2, 3, 4]);
        assert_eq!(shared.lock().status.dropped, 2);
        // The one in flight takes a place: later pushes drop the oldest queued ones, not it.
        let Next::Event(m) = shared.next(Duration::ZERO) else { panic!("expected an event") };
        shared.push(vec![5]);
        shared.push(vec![6]);
        let left: Vec<u8> = shared.lock().queue.iter().map(|m| m.payload[0]).collect();
        assert_eq!(left, [5, 6]);
        // The connection dropped: it goes back in front.
        shared.requeue(m);
        let left: Vec<u8> = shared.lock().queue.iter().map(|m| m.payload[0]).collect();
        assert_eq!(left, [2, 5, 6]);
        assert!(shared.lock().queue[0].sent_before);
        assert_eq!(shared.lock().status.dropped, 4);
    }
}
