//! The systemd side of `edge`: notifications received on real datagram sockets (a path and an
//! abstract name, as systemd passes them), the watchdog's rate limit and `WATCHDOG_PID`, and the
//! SIGTERM/SIGINT stop flag, including the forced exit on a second signal (in a child process).
//!
//! Tests marked `#[ignore]` are the child halves: the parent runs this test binary again with
//! `--ignored --exact NAME` and a prepared environment, and checks what the child did.

use edge::service::{self, Notifier};
use std::io::ErrorKind;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use testkit::Scratch;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// systemd's end: a bound datagram socket that reads what the service sends.
struct Systemd {
    socket: UnixDatagram,
}

impl Systemd {
    fn at_path(dir: &Scratch) -> (Systemd, String) {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        (Systemd::new(socket), path.to_str().expect("UTF-8 temp path").to_string())
    }

    fn abstract_name() -> (Systemd, String) {
        let name = unique("edge-service-test");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        (Systemd::new(socket), format!("@{name}"))
    }

    fn new(socket: UnixDatagram) -> Systemd {
        socket.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        Systemd { socket }
    }

    fn receive(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8(buf[..n].to_vec()).expect("a UTF-8 notification")
    }

    /// Nothing more is queued (sending is synchronous, so anything sent is already here).
    fn assert_empty(&self) {
        self.socket.set_nonblocking(true).expect("non-blocking");
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(n) => panic!("unexpected notification {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("recv failed: {e}"),
        }
        self.socket.set_nonblocking(false).expect("blocking");
    }
}

fn the_full_sequence(systemd: &Systemd, notifier: &Notifier) {
    notifier.ready().expect("READY");
    assert_eq!(systemd.receive(), "READY=1");
    notifier.status("12.5 fps, 2 faces\nsecond line").expect("STATUS");
    assert_eq!(systemd.receive(), "STATUS=12.5 fps, 2 faces second line");
    assert!(notifier.watchdog().expect("WATCHDOG"));
    assert_eq!(systemd.receive(), "WATCHDOG=1");
    notifier.stopping().expect("STOPPING");
    assert_eq!(systemd.receive(), "STOPPING=1");
    systemd.assert_empty();
}

#[test]
fn notifications_reach_a_socket_at_a_path() {
    let dir = Scratch::new("service");
    let (systemd, path) = Systemd::at_path(&dir);
    let notifier = Notifier::new(&path, Some(Duration::from_secs(10))).expect("notifier");
    assert_eq!(notifier.watchdog_timeout(), Some(Duration::from_secs(10)));
    assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(5)));
    the_full_sequence(&systemd, &notifier);
}

#[test]
fn notifications_reach_an_abstract_socket() {
    let (systemd, name) = Systemd::abstract_name();
    let notifier = Notifier::new(&name, Some(Duration::from_secs(10))).expect("notifier");
    the_full_sequence(&systemd, &notifier);
}

#[test]
fn watchdog_pings_at_most_once_per_half_timeout() {
    let dir = Scratch::new("service");
    let (systemd, path) = Systemd::at_path(&dir);
    // A long timeout: the second call is certainly within the interval.
    let notifier = Notifier::new(&path, Some(Duration::from_secs(600))).expect("notifier");
    assert!(notifier.watchdog().expect("first ping"));
    assert!(!notifier.watchdog().expect("second ping"));
    assert_eq!(systemd.receive(), "WATCHDOG=1");
    systemd.assert_empty();

    // A short one: after half of it has passed, the next call pings again.
    let notifier = Notifier::new(&path, Some(Duration::from_millis(100))).expect("notifier");
    assert!(notifier.watchdog().expect("first ping"));
    std::thread::sleep(Duration::from_millis(60));
    assert!(notifier.watchdog().expect("ping after the interval"));
    assert_eq!(systemd.receive(), "WATCHDOG=1");
    assert_eq!(systemd.receive(), "WATCHDOG=1");
    systemd.assert_empty();
}

#[test]
fn without_a_watchdog_nothing_is_pinged() {
    let dir = Scratch::new("service");
    let (systemd, path) = Systemd::at_path(&dir);
    let notifier = Notifier::new(&path, None).expect("notifier");
    assert_eq!(notifier.watchdog_interval(), None);
    assert!(!notifier.watchdog().expect("no ping"));
    notifier.ready().expect("READY");
    assert_eq!(systemd.receive(), "READY=1");
    systemd.assert_empty();
}

#[test]
fn watchdog_variables_are_read_as_sd_watchdog_enabled_does() {
    use std::ffi::OsStr;
    let v = |s: &'static str| Some(OsStr::new(s));
    let read = service::watchdog_from_env_values;
    assert_eq!(read(v("10000000"), None, 42).expect("ok"), Some(Duration::from_secs(10)));
    assert_eq!(read(v("10000000"), v("42"), 42).expect("ok"), Some(Duration::from_secs(10)));
    assert_eq!(read(v("10000000"), v("1"), 42).expect("ok"), None, "another process's watchdog");
    assert_eq!(read(None, v("42"), 42).expect("ok"), None);
    let err = read(v("ten"), None, 42).expect_err("bad WATCHDOG_USEC").to_string();
    assert!(err.contains("WATCHDOG_USEC") && err.contains("ten"), "{err}");
    let err = read(v("0"), None, 42).expect_err("zero WATCHDOG_USEC").to_string();
    assert!(err.contains("WATCHDOG_USEC"), "{err}");
    let err = read(v("100"), v("x"), 42).expect_err("bad WATCHDOG_PID").to_string();
    assert!(err.contains("WATCHDOG_PID"), "{err}");
}

#[test]
fn bad_sockets_are_one_line_errors() {
    let err = Notifier::new("relative/notify", None).expect_err("relative path").to_string();
    assert!(err.contains("relative/notify"), "{err}");
    let long = format!("/{}", "x".repeat(200));
    let err = format!("{:#}", Notifier::new(&long, None).expect_err("too long"));
    assert!(err.contains("NOTIFY_SOCKET") && !err.contains('\n'), "{err}");
    // A socket nobody listens on: the send fails and says where it went.
    let dir = Scratch::new("service");
    let missing = dir.join("gone");
    let notifier = Notifier::new(&missing, None).expect("notifier");
    let err = format!("{:#}", notifier.ready().expect_err("nobody listens"));
    assert!(err.contains("gone") && err.contains("READY=1"), "{err}");
}

/// Set for the child halves, so that `cargo test -- --ignored` run by hand leaves them idle.
const CHILD: &str = "EDGE_SERVICE_TEST_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the ignored test `name` of this binary in a child process with `env`, through `sh` so that
/// `$$` (the pid the child will have, since sh execs it) can be used in the values.
fn run_child(name: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut script = String::new();
    for (key, value) in env {
        script.push_str(&format!("{key}={value} "));
    }
    script.push_str("exec \"$0\" --ignored --exact --nocapture --test-threads=1 \"$1\"");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .arg(name)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env(CHILD, "1")
        .output()
        .expect("run the child test")
}

/// Child: sends READY and tries to ping, with the notifier systemd's variables describe.
#[test]
#[ignore = "run by from_env_reads_what_systemd_sets"]
fn child_notifies_from_env() {
    if !is_child() {
        return;
    }
    let notifier = Notifier::from_env().expect("valid variables").expect("NOTIFY_SOCKET is set");
    notifier.ready().expect("READY");
    notifier.watchdog().expect("WATCHDOG");
}

#[test]
fn from_env_reads_what_systemd_sets() {
    // This process is not under systemd (the variables are removed for the children only).
    let dir = Scratch::new("service");
    let (systemd, path) = Systemd::at_path(&dir);
    let out = run_child(
        "service::child_notifies_from_env",
        &[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "5000000"), ("WATCHDOG_PID", "$$")],
    );
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(systemd.receive(), "READY=1");
    assert_eq!(systemd.receive(), "WATCHDOG=1");
    systemd.assert_empty();

    // The watchdog belongs to pid 1, not to the child: READY only.
    let (systemd, name) = Systemd::abstract_name();
    let out = run_child(
        "service::child_notifies_from_env",
        &[("NOTIFY_SOCKET", &name), ("WATCHDOG_USEC", "5000000"), ("WATCHDOG_PID", "1")],
    );
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(systemd.receive(), "READY=1");
    systemd.assert_empty();

    // Not under systemd: no notifier.
    let out = run_child("service::child_notifies_from_env", &[]);
    assert!(!out.status.success(), "from_env must give None without NOTIFY_SOCKET");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOTIFY_SOCKET is set"), "{stderr}");
}

#[test]
fn sigterm_sets_the_stop_flag() {
    // The only test that signals this process; a second signal would end it (see the child).
    let stop = service::stop_on_signals().expect("handlers");
    assert!(!stop.load(Ordering::SeqCst));
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).expect("raise SIGTERM");
    assert!(stop.load(Ordering::SeqCst), "SIGTERM did not set the flag");
}

/// Child: the first SIGINT sets the flag; the second must end the process before the marker.
#[test]
#[ignore = "run by a_second_sigint_exits_at_once"]
fn child_gets_two_sigints() {
    if !is_child() {
        return;
    }
    let stop = service::stop_on_signals().expect("handlers");
    signal_hook::low_level::raise(signal_hook::consts::SIGINT).expect("raise SIGINT");
    assert!(stop.load(Ordering::SeqCst), "SIGINT did not set the flag");
    println!("FIRST SIGINT HANDLED");
    signal_hook::low_level::raise(signal_hook::consts::SIGINT).expect("raise SIGINT");
    println!("STILL RUNNING AFTER THE SECOND SIGINT");
}

#[test]
fn a_second_sigint_exits_at_once() {
    let out = run_child("service::child_gets_two_sigints", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FIRST SIGINT HANDLED"), "{stdout}");
    assert!(!stdout.contains("STILL RUNNING"), "{stdout}");
    assert_eq!(out.status.code(), Some(service::FORCED_EXIT_STATUS), "{stdout}");
}
