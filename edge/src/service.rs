//! Running as a systemd service: readiness, status and watchdog notifications, and a clean stop on
//! SIGTERM/SIGINT.
//!
//! The notification protocol is a datagram of `KEY=VALUE` lines sent to the socket named by
//! `NOTIFY_SOCKET` (sd_notify(3)); it is small enough to speak with std's `UnixDatagram`, so the
//! binary needs no libsystemd and cross-compiles with nothing but libc. Outside systemd (no
//! `NOTIFY_SOCKET`) there is no notifier and the loop runs the same.

use crate::live::source::Frame;
use crate::live::{FrameResult, Sink, StatsReport};
use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Sends state changes to systemd (`Type=notify`) and keeps its watchdog fed (`WatchdogSec=`).
///
/// Every method is a single non-blocking datagram; errors name the socket and the message, and
/// the caller decides whether to log them or stop.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// The socket as given (a path, or `@name` for an abstract socket), for error messages.
    name: String,
    watchdog: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
}

impl Notifier {
    /// The notifier systemd asked for through the environment, or `None` when the process was not
    /// started by systemd with `Type=notify` (no or empty `NOTIFY_SOCKET`).
    ///
    /// The watchdog is enabled by `WATCHDOG_USEC`, and only when `WATCHDOG_PID` is unset or names
    /// this process (a child that inherited the variables must not ping for its parent).
    pub fn from_env() -> Result<Option<Notifier>> {
        let socket = match std::env::var_os("NOTIFY_SOCKET") {
            Some(socket) if !socket.is_empty() => socket,
            _ => return Ok(None),
        };
        let watchdog = watchdog_from_env_values(
            std::env::var_os("WATCHDOG_USEC").as_deref(),
            std::env::var_os("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )?;
        Notifier::new(&socket, watchdog).map(Some)
    }

    /// A notifier for `socket` — a filesystem path, or `@name` for a socket in the abstract
    /// namespace, as in `NOTIFY_SOCKET` — with the watchdog timeout systemd enforces, if any.
    pub fn new(socket: impl AsRef<OsStr>, watchdog: Option<Duration>) -> Result<Notifier> {
        let socket = socket.as_ref();
        let name = socket.to_string_lossy().into_owned();
        let bytes = socket.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(socket),
            _ => bail!("NOTIFY_SOCKET {name:?}: not an absolute path nor an abstract @name"),
        }
        .with_context(|| format!("NOTIFY_SOCKET {name:?}: not a valid socket address"))?;
        if watchdog.is_some_and(|t| t.is_zero()) {
            bail!("NOTIFY_SOCKET {name:?}: the watchdog timeout must be longer than zero");
        }
        let socket = UnixDatagram::unbound()
            .with_context(|| format!("NOTIFY_SOCKET {name}: cannot create a socket"))?;
        // A full receive queue must not stall the frame loop; a lost ping is retried next frame.
        socket.set_nonblocking(true).with_context(|| {
            format!("NOTIFY_SOCKET {name}: cannot make the socket non-blocking")
        })?;
        Ok(Notifier { socket, addr, name, watchdog, last_ping: Mutex::new(None) })
    }

    /// Start-up is complete (models loaded, camera open): `READY=1`. Until then systemd reports
    /// the unit as "activating" and `systemctl start` waits.
    pub fn ready(&self) -> Result<()> {
        self.notify("READY=1")
    }

    /// A one-line status shown by `systemctl status` (e.g. frame rates); line breaks become spaces.
    pub fn status(&self, text: &str) -> Result<()> {
        self.notify(&format!("STATUS={}", text.replace(['\n', '\r'], " ")))
    }

    /// The service is shutting down: `STOPPING=1`.
    pub fn stopping(&self) -> Result<()> {
        self.notify("STOPPING=1")
    }

    /// Tells the watchdog the loop is alive: `WATCHDOG=1`, sent at most once per
    /// [`watchdog_interval`](Self::watchdog_interval), so it can be called every frame. Returns
    /// whether a datagram was sent; without a watchdog it does nothing.
    pub fn watchdog(&self) -> Result<bool> {
        let Some(interval) = self.watchdog_interval() else { return Ok(false) };
        let now = Instant::now();
        let mut last = self.last_ping.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|last| now.duration_since(last) < interval) {
            return Ok(false);
        }
        self.notify("WATCHDOG=1")?;
        *last = Some(now);
        Ok(true)
    }

    /// The timeout after which systemd kills a service that stopped pinging (`WatchdogSec=`).
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often [`watchdog`](Self::watchdog) actually pings: half the timeout, as sd_watchdog_enabled(3)
    /// advises. A loop that waits (a camera retry back-off) should wake at least this often.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// Sends one raw notification (newline-separated `KEY=VALUE` assignments, see sd_notify(3)),
    /// e.g. `EXTEND_TIMEOUT_USEC=…` for a slow start.
    pub fn notify(&self, state: &str) -> Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.addr).with_context(|| {
            format!(
                "cannot notify systemd at {} ({})",
                self.name,
                state.lines().next().unwrap_or("")
            )
        })?;
        if sent != state.len() {
            bail!("cannot notify systemd at {}: {sent} of {} bytes sent", self.name, state.len());
        }
        Ok(())
    }
}

/// The live loop's heartbeat: the watchdog fed with every frame and while the source is idle,
/// STATUS set to each interval's statistics, STOPPING at the end.
impl Sink for Notifier {
    fn name(&self) -> &str {
        "systemd"
    }

    fn frame(&mut self, _: &Frame, _: &FrameResult) -> Result<()> {
        self.watchdog().map(drop)
    }

    fn idle(&mut self) -> Result<()> {
        self.watchdog().map(drop)
    }

    fn stats(&mut self, report: &StatsReport) -> Result<()> {
        self.status(&report.to_string())
    }

    fn finish(&mut self, _: &StatsReport) -> Result<()> {
        self.stopping()
    }
}

/// The watchdog timeout from the values of `WATCHDOG_USEC` and `WATCHDOG_PID`, for the process
/// `own_pid`: `None` when the watchdog is off or meant for another process. (The logic of
/// [`Notifier::from_env`], separate so it is tested without changing the environment.)
pub fn watchdog_from_env_values(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Result<Option<Duration>> {
    let Some(usec) = usec.filter(|v| !v.is_empty()) else { return Ok(None) };
    if let Some(pid) = pid.filter(|v| !v.is_empty()) {
        let pid: u32 = pid
            .to_str()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("WATCHDOG_PID {pid:?}: not a process id"))?;
        if pid != own_pid {
            return Ok(None);
        }
    }
    let usec: u64 =
        usec.to_str().and_then(|u| u.parse().ok()).filter(|&u| u > 0).with_context(|| {
            format!("WATCHDOG_USEC {usec:?}: not a positive number of microseconds")
        })?;
    Ok(Some(Duration::from_micros(usec)))
}

/// Exit status when a second SIGTERM/SIGINT arrives while the loop is still stopping, as a shell
/// reports a process killed by SIGINT (128 + 2).
pub const FORCED_EXIT_STATUS: i32 = 128 + signal_hook::consts::SIGINT;

/// A flag set by the first SIGTERM or SIGINT, for the loop to finish its frame, print its final
/// statistics and exit. A second signal while the flag is set exits at once with
/// [`FORCED_EXIT_STATUS`], so a camera read that hangs cannot trap the user at Ctrl+C.
///
/// Call once, at start-up: each call registers its own handlers.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // The exit is registered before the flag, so the first signal finds the flag unset and
        // only sets it; the second finds it set and exits (signal-hook's double Ctrl+C pattern).
        flag::register_conditional_shutdown(signal, FORCED_EXIT_STATUS, Arc::clone(&stop))
            .with_context(|| format!("cannot install a handler for signal {signal}"))?;
        flag::register(signal, Arc::clone(&stop))
            .with_context(|| format!("cannot install a handler for signal {signal}"))?;
    }
    Ok(stop)
}
