//! Request ids for `X-Request-ID` when the client sent no usable one.

use std::cell::Cell;

/// A new random request id: 32 lowercase hex digits.
pub fn new_request_id_bytes() -> [u8; 32] {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    let (a, b) = STATE.with(|s| {
        let a = splitmix64(s);
        let b = splitmix64(s);
        (a, b)
    });
    let mut out = [0u8; 32];
    let digits = b"0123456789abcdef";
    for (i, byte) in a
        .to_be_bytes()
        .iter()
        .chain(b.to_be_bytes().iter())
        .enumerate()
    {
        out[2 * i] = digits[(byte >> 4) as usize];
        out[2 * i + 1] = digits[(byte & 0xf) as usize];
    }
    out
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process and per thread.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn splitmix64(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
    state.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_hex_and_differ() {
        let a = new_request_id_bytes();
        let b = new_request_id_bytes();
        assert_ne!(a, b);
        assert!(a
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
