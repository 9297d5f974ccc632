//! HTTP/2 requests as HTTP/1.1 upstream heads, and HTTP/1.1 response
//! heads as HTTP/2 responses.

use crate::h1::head::{self, ClientInfo, Framing};
use crate::h1::UpstreamError;
use crate::request_id;
use h2::RecvStream;
use http::{header, Response};

/// How the request body goes upstream: with its Content-Length, chunked
/// when the client sent none, or not at all. `None`: an invalid length.
pub(super) fn request_framing(headers: &http::HeaderMap, body: &RecvStream) -> Option<Framing> {
    if body.is_end_stream() {
        return Some(Framing::None);
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(v) => {
            let n: u64 = v.to_str().ok()?.trim().parse().ok()?;
            Some(if n == 0 {
                Framing::None
            } else {
                Framing::Length(n)
            })
        }
        None => Some(Framing::Chunked),
    }
}

/// The HTTP/1.1 request head: `Host` from `:authority`, the cookies HTTP/2
/// may split joined again (RFC 9113 §8.2.3), connection-specific fields
/// dropped, forwarding fields set; names with `_` dropped unless
/// `allow_underscores`, as for HTTP/1.x.
pub(super) fn write_upstream_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    authority: &str,
    client: &ClientInfo,
    framing: Framing,
    allow_underscores: bool,
) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    head::field(out, b"Host", authority.as_bytes());
    let mut forwarded_for: Option<Vec<u8>> = None;
    let mut cookies: Vec<&[u8]> = Vec::new();
    let mut request_id = None;
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if n == "x-forwarded-for" {
            let chain = forwarded_for.get_or_insert_with(Vec::new);
            if !chain.is_empty() {
                chain.extend_from_slice(b", ");
            }
            chain.extend_from_slice(value.as_bytes().trim_ascii());
            continue;
        }
        if n == "x-request-id" && head::usable_request_id(value.as_bytes()) {
            request_id = Some(value.as_bytes());
        }
        if n == "host"
            || n == "content-length"
            || n == "transfer-encoding"
            || head::is_hop_by_hop(n)
            || head::is_forwarding_field(n)
            || head::dropped_name(n, allow_underscores)
        {
            continue;
        }
        if n == "cookie" {
            cookies.push(value.as_bytes());
            continue;
        }
        head::field(out, n.as_bytes(), value.as_bytes());
    }
    if !cookies.is_empty() {
        head::field(out, b"cookie", &cookies.join(&b"; "[..]));
    }
    match framing {
        Framing::Length(n) => head::field(out, b"Content-Length", n.to_string().as_bytes()),
        Framing::Chunked => head::field(out, b"Transfer-Encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {}
    }
    let generated;
    let request_id = match request_id {
        Some(id) => id,
        None => {
            generated = request_id::new_request_id_bytes();
            &generated[..]
        }
    };
    let chain = forwarded_for.as_deref().filter(|c| !c.is_empty());
    head::write_forwarding_fields(out, chain, authority, client, request_id);
    out.extend_from_slice(b"\r\n");
}

/// The response head for the client: hop-by-hop and framing fields
/// dropped (HTTP/2 frames the body itself), HSTS set.
pub(super) fn to_h2_response(
    parsed: &head::ResponseHead<'_, '_>,
    hsts: Option<&[u8]>,
) -> Result<Response<()>, UpstreamError> {
    let mut builder = Response::builder().status(parsed.meta.status);
    let encoded = parsed
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    for h in parsed.headers {
        let name = h.name;
        if head::is_hop_by_hop(name)
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (encoded && name.eq_ignore_ascii_case("content-length"))
            || (hsts.is_some() && name.eq_ignore_ascii_case("strict-transport-security"))
            || head::listed_in_connection(parsed.headers, name)
        {
            continue;
        }
        builder = builder.header(name, h.value);
    }
    if let Some(h) = hsts {
        builder = builder.header(header::STRICT_TRANSPORT_SECURITY, h);
    }
    builder.body(()).map_err(|_| {
        UpstreamError::BadHead(head::HeadError::Malformed(httparse::Error::HeaderValue))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream_head(allow_underscores: bool) -> String {
        let (parts, ()) = http::Request::builder()
            .uri("http://a.test/p")
            .header("x_auth_user", "admin")
            .header("x-auth-user", "alice")
            .header("accept", "*/*")
            .body(())
            .map(http::Request::into_parts)
            .unwrap_or_else(|e| panic!("request: {e}"));
        let client = ClientInfo {
            ip: Some("192.0.2.1".into()),
            server_port: Some("80".into()),
            tls: false,
        };
        let mut out = Vec::new();
        write_upstream_head(
            &mut out,
            &parts,
            "a.test",
            &client,
            Framing::None,
            allow_underscores,
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn field_names_with_underscores_are_dropped_unless_allowed() {
        let dropped = upstream_head(false);
        assert!(!dropped.contains("x_auth_user"), "{dropped}");
        assert!(dropped.contains("x-auth-user: alice\r\n"), "{dropped}");
        assert!(dropped.contains("accept: */*\r\n"), "{dropped}");

        let kept = upstream_head(true);
        assert!(kept.contains("x_auth_user: admin\r\n"), "{kept}");
        assert!(kept.contains("x-auth-user: alice\r\n"), "{kept}");
    }
}
