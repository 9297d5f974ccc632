//! Snapshot frames from the controller's stream: decoded, validated,
//! compiled into a route table and looked up, as the gateway does.

use gatehouse_gateway::install::{parse_frame, SharedTable};

pub fn run(data: &[u8]) {
    let Ok(frame) = parse_frame(data) else {
        return;
    };
    let shared = SharedTable::new(None);
    if shared.install(&frame).is_err() {
        return;
    }
    let table = shared.table.load();
    for host in ["", "a.example.com", "x.a.example.com", "A.EXAMPLE.COM."] {
        for path in ["/", "/a", "/a/b/", "//a", "/a?q"] {
            let _ = table.find(host, path);
        }
    }
}
