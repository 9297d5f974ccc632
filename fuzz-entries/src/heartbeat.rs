//! Datagrams on the speaker's heartbeat port: anything from the LAN.

use gatehouse_controller::speaker::heartbeat::Heartbeat;

/// Decodes a datagram; one that decodes must encode back to exactly the
/// same bytes (the format has one spelling per heartbeat).
pub fn run(data: &[u8]) {
    let Ok(heartbeat) = Heartbeat::decode(data) else {
        return;
    };
    match heartbeat.encode() {
        Some(bytes) => assert_eq!(bytes, data, "{heartbeat:?}"),
        None => panic!("a decoded heartbeat cannot be encoded: {heartbeat:?}"),
    }
}
