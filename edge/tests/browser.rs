//! `edge serve`'s page in a real browser: headless Chromium driven over the DevTools protocol on a
//! pipe (`--remote-debugging-pipe`: no port to pick, so nothing to race for), uploading photos
//! through the page's own file input.

use crate::serve::Served;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{photo, Scratch};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Hang guard only.
const HANG: Duration = Duration::from_secs(120);
/// Non-empty once the upload page has heard from /healthz that the models are loaded (it says
/// "Loading the models…" until then).
const READY: &str = "(t => t && t.startsWith('Ready.') ? t : '')\
    (location.pathname === '/' && document.getElementById('model')?.textContent)";

/// One headless Chromium with one page, attached.
struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    replies: BufReader<std::io::PipeReader>,
    next_id: u64,
    session: String,
    _profile: Scratch,
}

impl Browser {
    fn start(name: &str) -> Browser {
        assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: run .ci/deps");
        let profile = Scratch::new(name);
        let (command_reader, commands) = std::io::pipe().expect("a pipe");
        let (replies, reply_writer) = std::io::pipe().expect("a pipe");
        let (input, output) = (command_reader.as_raw_fd(), reply_writer.as_raw_fd());
        let mut cmd = Command::new(CHROMIUM);
        // The flags Chromium needs on a machine without network or display (as root).
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=900,1100",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: between fork and exec, only async-signal-safe calls: the pipe ends become fds 3
        // (commands in) and 4 (replies out), copied above 10 first so neither overwrites the other.
        unsafe {
            cmd.pre_exec(move || {
                let (a, b) =
                    (libc::fcntl(input, libc::F_DUPFD, 10), libc::fcntl(output, libc::F_DUPFD, 10));
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("chromium starts");
        drop((command_reader, reply_writer));
        let mut browser = Browser {
            child,
            commands,
            replies: BufReader::new(replies),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target = target["targetId"].as_str().expect("a target id").to_string();
        let attached =
            browser.call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }));
        browser.session = attached["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// Sends one command (to the page once attached) and returns its result; events in between
    /// are skipped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands.write_all(&bytes).expect("writes to chromium");
        loop {
            let mut reply = vec![];
            let n = self.replies.read_until(0, &mut reply).expect("reads from chromium");
            assert!(n > 0, "chromium closed its pipe during {method}");
            reply.pop();
            let reply: Value = serde_json::from_slice(&reply).expect("a JSON message");
            if reply["id"] == json!(self.next_id) {
                assert!(reply.get("error").is_none(), "{method}: {}", reply["error"]);
                return reply["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it gives a non-empty string.
    fn wait_for(&mut self, expression: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(text) = self.eval(expression).as_str().filter(|t| !t.is_empty()) {
                return text.to_string();
            }
            assert!(start.elapsed() < HANG, "{expression} still empty after {HANG:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for("document.readyState === 'complete' ? 'loaded' : ''");
    }

    /// Chooses `file` in the page's file input, as a user would.
    fn choose(&mut self, selector: &str, file: &Path) {
        let document = self.call("DOM.getDocument", json!({}));
        let root = document["root"]["nodeId"].clone();
        let input = self.call("DOM.querySelector", json!({ "nodeId": root, "selector": selector }));
        let path = file.to_str().expect("utf-8 path");
        self.call("DOM.setFileInputFiles", json!({ "files": [path], "nodeId": input["nodeId"] }));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |n, (i, &d)| n | (d as u32) << (18 - 6 * i));
            let bytes = n.to_be_bytes();
            bytes[1..c.len()].to_vec()
        })
        .collect()
}

#[test]
fn the_page_shows_the_verdict_of_an_uploaded_photo_and_an_error_for_a_bad_one() {
    let served = Served::start("browser-serve", &[]);
    let astronaut = photo("astronaut.png");
    let bytes = std::fs::read(&astronaut).expect("reads the photo");
    let api = served.post("/api/analyze", "image/png", &bytes).json();
    let face = &api["faces"][0];

    let mut browser = Browser::start("browser-profile");
    browser.open(&format!("http://{}/", served.addr));
    browser.wait_for(READY);
    browser.choose("#files", &astronaut);
    let verdict = browser.wait_for("document.querySelector('.verdict')?.textContent ?? ''");
    let label = face["label"].as_str().expect("a label");
    let (fake, real) = if label == "FAKE" { (1, 0) } else { (0, 1) };
    assert_eq!(verdict, format!("1 face: {fake} FAKE, {real} REAL."));
    let cells =
        browser.eval("[...document.querySelectorAll('tbody td')].map(td => td.textContent)");
    let p_fake = format!("{:.3}", face["p_fake"].as_f64().expect("p_fake"));
    assert_eq!(cells[1], json!(label), "{cells}");
    assert_eq!(cells[2], json!(p_fake), "{cells}");
    // The photo is drawn with its face's box: a canvas the photo's size.
    let size = browser.eval("(c => c && [c.width, c.height])(document.querySelector('canvas'))");
    assert_eq!(size, json!([api["width"], api["height"]]));

    // A screenshot of the page with its verdict; EDGE_PAGE_SCREENSHOT keeps one, in the format
    // its extension names (docs/serve-page.jpg).
    let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    let img = image::load_from_memory(&png).expect("a PNG screenshot");
    assert_eq!(img.width(), 900);
    if let Some(path) = std::env::var_os("EDGE_PAGE_SCREENSHOT") {
        img.to_rgb8().save(path).expect("writes the screenshot");
    }

    // A file that is not an image: the server's error is shown in the page, not a blank card.
    let scratch = Scratch::new("browser-bad");
    let text = scratch.write("notes.jpg", "these are notes, not a photo");
    browser.choose("#files", &text);
    let error = browser.wait_for("document.querySelector('.result .error')?.textContent ?? ''");
    assert!(error.starts_with("Not analysed: notes.jpg:"), "{error}");
    assert!(error.contains("not an image"), "{error}");
    assert_eq!(served.get("/api/stats").json()["analysed"], 2);
}

/// With `--token-file`, the page sends the browser to the login form; a wrong token is said so,
/// the right one sets the cookie that the page's own uploads then carry.
#[test]
fn with_a_token_the_browser_logs_in_then_uploads() {
    let dir = Scratch::new("browser-token");
    let token = "5b0e9d2c41f87a36e0c9";
    let file = dir.write("token", token);
    let path = file.to_str().expect("a UTF-8 path");
    let served = Served::start_on("browser-token-serve", "127.0.0.1:0", &["--token-file", path]);

    let mut browser = Browser::start("browser-token-profile");
    browser.open(&format!("http://{}/", served.addr));
    // Redirected: the login form, loaded.
    let login = "location.pathname === '/login' && document.readyState === 'complete' ? 'in' : ''";
    browser.wait_for(login);
    let submit = |typed: &str| {
        format!(
            "document.getElementById('token').value = '{typed}'; \
             document.getElementById('login').submit(); 'sent'"
        )
    };
    browser.eval(&submit("0000000000000000"));
    let why = browser.wait_for("document.querySelector('p.error')?.textContent ?? ''");
    assert_eq!(why, "That is not this board's token.");
    browser.eval(&submit(token));
    browser.wait_for(READY);
    browser.choose("#files", &photo("astronaut.png"));
    let verdict = browser.wait_for("document.querySelector('.verdict')?.textContent ?? ''");
    assert!(verdict.starts_with("1 face: "), "{verdict}");
}
