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

mod config;
mod packet;
mod publisher;

pub use config::{
    default_client_id, parse_address, Credentials, MqttConfig, QoS, DEFAULT_PORT,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_TOPIC_PREFIX,
};
pub use publisher::{MqttPublisher, MqttStatus};
