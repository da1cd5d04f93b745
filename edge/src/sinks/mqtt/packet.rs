//! The MQTT 3.1.1 packets a publisher needs, encoded.

use super::config::{Credentials, QoS};

// MQTT 3.1.1 control packet types.
pub(super) const CONNECT: u8 = 1;
pub(super) const CONNACK: u8 = 2;
pub(super) const PUBLISH: u8 = 3;
pub(super) const PUBACK: u8 = 4;
pub(super) const PINGREQ: u8 = 12;
pub(super) const PINGRESP: u8 = 13;
pub(super) const DISCONNECT: u8 = 14;

/// The variable-length "remaining length" of a fixed header (1 to 4 bytes, 7 bits each).
pub(super) fn encode_length(mut length: usize, out: &mut Vec<u8>) {
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

pub(super) fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first_byte);
    encode_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// CONNECT with a clean session, the retained QoS 1 last will, and the credentials if any.
pub(super) fn connect_packet(
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

pub(super) fn publish_packet(
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
}
