//! The headers a gateway adds on the way upstream: X-Forwarded-*, X-Real-IP,
//! X-Request-ID.

use http::{header, HeaderValue};
use pingora_core::{ErrorType::InternalError, OrErr, Result};
use pingora_http::RequestHeader;
use std::cell::Cell;
use std::net::IpAddr;

pub const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
const X_FORWARDED_PORT: &str = "x-forwarded-port";
const X_REAL_IP: &str = "x-real-ip";

/// A request's id: the client's if it sent a usable one, else a new one.
pub type RequestId = HeaderValue;

/// Keeps the client's X-Request-ID if it is 1–128 visible ASCII characters;
/// otherwise makes a new random 32-hex-digit id.
pub fn request_id(req: &RequestHeader) -> RequestId {
    if let Some(v) = req.headers.get(X_REQUEST_ID) {
        if crate::h1::head::usable_request_id(v.as_bytes()) {
            return v.clone();
        }
    }
    new_request_id()
}

fn new_request_id() -> RequestId {
    let id = new_request_id_bytes();
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("0"))
}

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

/// How the client reached us.
#[derive(Debug, Clone, Copy)]
pub struct ClientConnection {
    pub client_ip: Option<IpAddr>,
    pub server_port: Option<u16>,
    pub tls: bool,
}

/// Sets the forwarding headers. X-Forwarded-For is appended to (the client's
/// chain is kept, ours added last); the others are overwritten, since a
/// client must not be able to claim another scheme, host or address.
pub fn set_headers(
    req: &mut RequestHeader,
    conn: ClientConnection,
    id: Option<&RequestId>,
) -> Result<()> {
    let host = match req.headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => {
            // HTTP/2 clients send :authority only; HTTP/1.1 upstreams need Host.
            let from_authority = req
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let Some(h) = &from_authority {
                req.insert_header(header::HOST, h.clone())?;
            }
            from_authority
        }
    };
    if let Some(host) = host {
        req.insert_header(X_FORWARDED_HOST, host)?;
    }
    if let Some(ip) = conn.client_ip {
        // One allocation for the address; the copies share it.
        let ip_value = HeaderValue::try_from(ip.to_string())
            .or_err(InternalError, "client address as a header value")?;
        let chain = match req
            .headers
            .get(X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => HeaderValue::try_from(format!("{prev}, {ip}"))
                .or_err(InternalError, "X-Forwarded-For chain as a header value")?,
            _ => ip_value.clone(),
        };
        req.insert_header(X_FORWARDED_FOR, chain)?;
        req.insert_header(X_REAL_IP, ip_value)?;
    }
    let proto = HeaderValue::from_static(if conn.tls { "https" } else { "http" });
    req.insert_header(X_FORWARDED_PROTO, proto)?;
    if let Some(port) = conn.server_port {
        req.insert_header(X_FORWARDED_PORT, port.to_string())?;
    }
    if let Some(id) = id {
        req.insert_header(X_REQUEST_ID, id.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn conn() -> ClientConnection {
        ClientConnection {
            client_ip: Some("192.0.2.7".parse().unwrap()),
            server_port: Some(8080),
            tls: false,
        }
    }

    #[test]
    fn headers_are_set_and_spoofing_overwritten() {
        let mut r = req(&[
            ("host", "shop.example.com"),
            ("x-forwarded-for", "10.9.9.9"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        let id = request_id(&r);
        set_headers(&mut r, conn(), Some(&id)).unwrap();
        let get = |k: &str| r.headers.get(k).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get("x-forwarded-for"), "10.9.9.9, 192.0.2.7");
        assert_eq!(get("x-real-ip"), "192.0.2.7");
        assert_eq!(get("x-forwarded-proto"), "http");
        assert_eq!(get("x-forwarded-host"), "shop.example.com");
        assert_eq!(get("x-forwarded-port"), "8080");
        assert_eq!(get("host"), "shop.example.com");
        assert_eq!(get("x-request-id").len(), 32);
    }

    #[test]
    fn client_request_id_is_kept_when_sane() {
        let cases = [
            ("kept", "abc-123", true),
            ("too_long", &"a".repeat(129)[..], false),
            ("space_inside", "a b", false),
        ];
        for (name, value, kept) in cases {
            let id = request_id(&req(&[("x-request-id", value)]));
            assert_eq!(id.as_bytes() == value.as_bytes(), kept, "case {name}");
        }
    }

    #[test]
    fn generated_ids_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
    }
}
