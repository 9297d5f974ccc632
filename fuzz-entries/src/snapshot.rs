//! Snapshot stream lines from the controller: each decoded, validated and
//! applied in order (full snapshots compiled into a route table, endpoint
//! updates applied to it), then looked up, as the gateway does.

use gatehouse_gateway::install::{parse_frame, SharedTable};

pub fn run(data: &[u8]) {
    let shared = SharedTable::new(None);
    for line in data.split(|&b| b == b'\n') {
        let Ok(frame) = parse_frame(line) else {
            continue;
        };
        let _ = shared.apply(&frame);
    }
    if !shared.is_ready() {
        return;
    }
    let table = shared.table.load();
    for host in ["", "a.example.com", "x.a.example.com", "A.EXAMPLE.COM."] {
        for path in ["/", "/a", "/a/b/", "//a", "/a?q"] {
            if let Some(target) = table.find(host, path) {
                let _ = target.backend.pick(0);
            }
        }
    }
}
