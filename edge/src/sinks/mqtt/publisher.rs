//! The publisher: a bounded queue the loop appends to, and the thread that owns the connection.

use super::config::{Credentials, MqttConfig, QoS};
use super::packet::*;
use crate::live::{Event, Sink, StatsReport};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
/// What the end of a live run, or dropping the publisher, spends delivering the queue before
/// `offline`.
const FLUSH: Duration = Duration::from_secs(2);
/// After the flush, the time left to say `offline` and disconnect; a broker slower than that (or
/// a peer that is no broker) is left to the last will, so closing never takes much over the flush.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// The largest packet a publisher is sent: the replies it waits for (CONNACK, PUBACK, PINGRESP)
/// have 2 bytes or none. A longer one is garbage, refused before anything is allocated for it
/// (a garbage length asked for up to 256 MiB).
const MAX_INCOMING: usize = 1024;

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
    /// Gives up waiting for the network thread [`CLOSE_GRACE`] after `flush`.
    pub fn close(mut self, flush: Duration) -> MqttStatus {
        self.shut_down(flush);
        self.status()
    }

    fn shut_down(&mut self, flush: Duration) {
        let Some(thread) = self.thread.take() else { return };
        let give_up = Instant::now() + flush + CLOSE_GRACE;
        let mut state = self.shared.lock();
        state.stop = Some(Instant::now() + flush);
        self.shared.wake.notify_all();
        while !state.finished {
            let now = Instant::now();
            if now >= give_up {
                // The broker stopped answering, or is no broker; leave the thread to its timeouts
                // (it ends with the process) and the broker to the last will.
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
        self.shut_down(FLUSH);
    }
}

/// Never fails an event or statistics: a broker that is away costs queued or dropped events,
/// not the loop. At the end, the run's statistics go out and the queue is delivered (up to 2 s);
/// what never reached the broker is the error.
impl Sink for MqttPublisher {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn event(&mut self, event: &Event) -> Result<()> {
        self.publish_event(event);
        Ok(())
    }

    fn stats(&mut self, report: &StatsReport) -> Result<()> {
        self.publish_stats(&serde_json::to_value(report).context("statistics")?);
        Ok(())
    }

    fn finish(&mut self, report: &StatsReport) -> Result<()> {
        self.stats(report)?;
        self.shut_down(FLUSH);
        let status = self.status();
        let lost = status.queued as u64 + status.dropped;
        if lost > 0 {
            let why = status.last_error.map(|e| format!(": {e}")).unwrap_or_default();
            bail!("{lost} event(s) not delivered{why}");
        }
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

    /// One packet: its type (the high nibble of the first byte) and its body, whole within
    /// [`REPLY_TIMEOUT`] (a peer that trickles bytes cannot hold the thread longer), and at most
    /// [`MAX_INCOMING`] bytes long.
    fn read_packet(&mut self) -> Result<(u8, Vec<u8>)> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut byte = [0u8; 1];
        self.read_exact(&mut byte, deadline)?;
        let kind = byte[0] >> 4;
        let mut length = 0usize;
        for shift in (0..4).map(|i| 7 * i) {
            self.read_exact(&mut byte, deadline)?;
            length |= usize::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                if length > MAX_INCOMING {
                    bail!(
                        "the broker sent a packet of {length} bytes (type {kind}) where a reply of \
                         at most 2 is due: not an MQTT broker, or a corrupted connection"
                    );
                }
                let mut body = vec![0u8; length];
                self.read_exact(&mut body, deadline)?;
                return Ok((kind, body));
            }
        }
        bail!(
            "the broker sent a malformed packet length: not an MQTT broker, or a corrupted \
             connection"
        )
    }

    fn read_exact(&mut self, mut buf: &mut [u8], deadline: Instant) -> Result<()> {
        let timeout =
            || anyhow::anyhow!("no reply from the broker within {} s", REPLY_TIMEOUT.as_secs());
        while !buf.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(buf) {
                Ok(0) => bail!("the broker closed the connection"),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    return Err(timeout())
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
