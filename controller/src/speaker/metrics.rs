//! The speaker's Prometheus metrics: names in one place, with HELP text.

use metrics::{describe_counter, describe_gauge};

pub const ANNOUNCED: &str = "gatehouse_speaker_announced";
pub const OWNERSHIP_CHANGES: &str = "gatehouse_speaker_ownership_changes_total";
pub const GRATUITOUS: &str = "gatehouse_speaker_gratuitous_packets_total";
pub const REPLIES: &str = "gatehouse_speaker_replies_total";
pub const FRAMES_REFUSED: &str = "gatehouse_speaker_frames_refused_total";
pub const STANDING: &str = "gatehouse_speaker_standing";
pub const PEERS: &str = "gatehouse_speaker_peers";
pub const HEARTBEATS_RECEIVED: &str = "gatehouse_speaker_heartbeats_received_total";
pub const HEARTBEATS_REFUSED: &str = "gatehouse_speaker_heartbeats_refused_total";
pub const HEARTBEAT_SEND_ERRORS: &str = "gatehouse_speaker_heartbeat_send_errors_total";
pub const INTERFACE_ERRORS: &str = "gatehouse_speaker_interface_errors_total";

/// Registers the HELP text (call once, after installing the recorder).
pub fn describe() {
    describe_gauge!(
        ANNOUNCED,
        "1 for each address this node announces now (by node and address), 0 after it stopped."
    );
    describe_counter!(OWNERSHIP_CHANGES, "Addresses this node started (change=taken) or stopped (change=released) announcing, by node and address.");
    describe_counter!(GRATUITOUS, "Gratuitous ARP and unsolicited Neighbor Advertisement packets sent on taking an address over, by node, address and interface.");
    describe_counter!(REPLIES, "ARP replies and Neighbor Advertisements sent in answer to a request for an announced address, by node, kind (arp, ndp) and interface.");
    describe_counter!(
        FRAMES_REFUSED,
        "ARP and NDP frames dropped as malformed, by interface."
    );
    describe_gauge!(STANDING, "1 when this speaker may announce; 0 with the reason (NoApiContact, Joining, NoPeerMajority) when it announces nothing.");
    describe_gauge!(PEERS, "Other speakers heard from within the peer timeout (state=alive) and within the member window (state=member).");
    describe_counter!(
        HEARTBEATS_RECEIVED,
        "Heartbeats accepted from other speakers."
    );
    describe_counter!(HEARTBEATS_REFUSED, "Datagrams on the heartbeat port refused, by reason (Magic, Version, Malformed, UnknownSender).");
    describe_counter!(
        HEARTBEAT_SEND_ERRORS,
        "Heartbeats that could not be sent to a peer."
    );
    describe_counter!(
        INTERFACE_ERRORS,
        "Raw-socket errors on an interface (opening, reading or sending), by interface."
    );
}
