//! A plain HTTP/1.1 client over std sockets and a spawned `edge serve`, for the server's tests
//! and its bench: every byte on the wire is the test's own (half-sent bodies, bare heads).

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Hang guard only: a request or a start-up that takes longer has hung.
pub const HANG: Duration = Duration::from_secs(120);

/// A running `edge serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `command` (an `edge serve` with `--listen`), reads the address it prints, and waits
    /// until `/healthz` says the models have loaded. An unspecified address (all interfaces) is
    /// reached over loopback.
    pub fn start(mut command: Command) -> Server {
        let mut child = command
            .env_remove("NOTIFY_SOCKET")
            .stderr(Stdio::piped())
            .spawn()
            .expect("edge serve starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("reads stderr");
        let mut addr: SocketAddr = line
            .trim()
            .strip_prefix("edge: serving on http://")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .parse()
            .expect("an address");
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        // The rest of stderr is drained so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let server = Server { child, addr };
        let start = Instant::now();
        while server.get("/healthz").status != 200 {
            assert!(start.elapsed() < HANG, "models not loaded after {HANG:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        request(self.addr, "POST", path, &[("Content-Type", content_type)], body)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
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

    /// A line of the server's /proc status in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reads the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} line"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_string()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(HANG)).expect("read timeout");
    stream
}

/// The request head, with `Connection: close` and the body's length.
pub fn head(method: &str, path: &str, headers: &[(&str, &str)], length: usize) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head + &format!("Content-Length: {length}\r\n\r\n")
}

/// One HTTP/1.1 request, the whole reply read until the server closes.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    h: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = connect(addr);
    stream.write_all(head(method, path, h, body.len()).as_bytes()).expect("writes the head");
    // A server that answers early (413, 503) may close before reading the whole body.
    let _ = stream.write_all(body);
    read_reply(stream)
}

pub fn read_reply(mut stream: TcpStream) -> Reply {
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
pub fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
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
