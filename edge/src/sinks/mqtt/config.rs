//! What `--mqtt` and its flags configure: the broker address, topics, client id, credentials.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The MQTT port without TLS.
pub const DEFAULT_PORT: u16 = 1883;
/// Topics start with this unless `--mqtt-topic` says otherwise.
pub const DEFAULT_TOPIC_PREFIX: &str = "deepfake-edge";
/// Events kept while the broker is away (a few minutes of a busy camera).
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;

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
    pub(super) fn validate(&self) -> Result<()> {
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
    pub(super) password: String,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
