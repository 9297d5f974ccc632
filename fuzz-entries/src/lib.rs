//! What each fuzz target does with its input. Every parser of untrusted
//! bytes has an entry here that runs it and checks the invariants it must
//! keep, panicking when one breaks. The `cargo fuzz` targets in `fuzz/`
//! call these functions; `tests/corpus.rs` feeds them every file of the
//! corpus kept in `fuzz/corpus/`, so the corpus (the reproductions of past
//! bugs included) is checked by the ordinary test suite too.
#![forbid(unsafe_code)]

pub mod chunked;
pub mod heartbeat;
pub mod l2_frame;
pub mod manifest;
pub mod request_head;
pub mod response_head;
pub mod snapshot;

/// What a target does with one input; panics when an invariant breaks.
pub type Entry = fn(&[u8]);

/// Every fuzz target, by the name of its `fuzz/fuzz_targets/*.rs` file and
/// corpus directory.
pub const TARGETS: [(&str, Entry); 8] = [
    ("request_head", request_head::run),
    ("request_head_httparse", request_head::differential),
    ("chunked", chunked::run),
    ("response_head", response_head::run),
    ("snapshot_frame", snapshot::run),
    ("manifest", manifest::run),
    ("l2_frame", l2_frame::run),
    ("heartbeat", heartbeat::run),
];
