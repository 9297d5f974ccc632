//! HTTP/1.x message heads: parsing with httparse, the checks RFC 9112 asks
//! of an intermediary (framing, Host, hop-by-hop fields) and writing the
//! heads we send on.

use std::borrow::Cow;
use std::mem::MaybeUninit;

/// Header fields per message; more get 431 (requests) or 502 (responses).
pub const MAX_HEADERS: usize = 128;

pub type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Response bodies only: ends when the upstream closes.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed message head: {0}")]
    Malformed(httparse::Error),
    #[error("header fields too large")]
    TooLarge,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("unsupported Transfer-Encoding")]
    BadTransferEncoding,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndEncoding,
    #[error("missing or repeated Host")]
    BadHost,
    #[error("request target is not valid")]
    BadTarget,
}

impl From<httparse::Error> for HeadError {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => HeadError::TooLarge,
            other => HeadError::Malformed(other),
        }
    }
}

/// Field names that only concern one connection and are never forwarded.
pub fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Fields a `Connection` option can never remove (with the forwarding
/// fields below): the gateway frames, routes or forwards the message by
/// them, or writes them itself. A client (or upstream) naming one in
/// `Connection` is ignored for that name, so that the framing the gateway
/// read is the framing it sends on.
const PROTECTED: [&str; 4] = ["content-length", "transfer-encoding", "host", "expect"];

/// The forwarding fields the gateway writes itself (clients' values are
/// replaced, or for X-Forwarded-For appended to).
const FORWARDING: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "x-request-id",
];

/// Is `name` one a `Connection` option may not remove: the protected
/// fields and the forwarding fields?
pub fn is_protected(name: &[u8]) -> bool {
    PROTECTED
        .iter()
        .chain(FORWARDING.iter())
        .any(|p| name.eq_ignore_ascii_case(p.as_bytes()))
}

/// True if a comma-separated field value contains `token`.
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The Connection header's verdict and whether it names other fields.
#[derive(Debug, Default, Clone, Copy)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    /// Some token other than close/keep-alive/upgrade that names a field
    /// which may be dropped (not a protected one).
    names_fields: bool,
}

impl ConnectionTokens {
    fn add(&mut self, value: &[u8]) {
        for t in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if t.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !t.is_empty() && !is_protected(t) {
                self.names_fields = true;
            }
        }
    }
}

/// Is `name` listed in any Connection field of `headers`, and so removed
/// as hop-by-hop? Never true for the protected fields.
pub fn listed_in_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    !is_protected(name.as_bytes())
        && headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .any(|h| has_token(h.value, name))
}

fn parse_content_length(value: &[u8]) -> Option<u64> {
    // "42" or a list of identical values ("42, 42"), which RFC 9110 allows.
    let mut result = None;
    for part in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        match result {
            Some(prev) if prev != n => return None,
            _ => result = Some(n),
        }
    }
    result
}

/// The Transfer-Encoding list ends in `chunked`, which appears once.
fn ends_in_chunked(values: &[&[u8]]) -> bool {
    let codings: Vec<&[u8]> = values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    codings.last().is_some_and(chunked) && codings.iter().filter(|c| chunked(c)).count() == 1
}

/// Content-Length and Transfer-Encoding of a message.
struct FramingFields<'b> {
    length: Option<u64>,
    encodings: Vec<&'b [u8]>,
}

fn framing_fields<'b>(headers: &[httparse::Header<'b>]) -> Result<FramingFields<'b>, HeadError> {
    let mut length = None;
    let mut encodings = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value).ok_or(HeadError::BadContentLength)?;
            if length.is_some_and(|prev| prev != n) {
                return Err(HeadError::BadContentLength);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            encodings.push(h.value);
        }
    }
    Ok(FramingFields { length, encodings })
}

/// What the proxy needs to know about a request, borrowed from its head.
#[derive(Debug)]
pub struct RequestMeta<'b> {
    pub method: &'b str,
    /// The target as sent upstream (origin form; owned only when an
    /// absolute-form target had no path, as `http://a.test?q`).
    pub target: Cow<'b, str>,
    /// The path used for routing (target without the query).
    pub path: &'b str,
    /// The authority used for routing: from an absolute-form target, else Host.
    pub host: &'b str,
    pub http10: bool,
    pub framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// The `Upgrade` value of an upgrade request (e.g. WebSocket).
    pub upgrade: Option<&'b [u8]>,
    pub expect_continue: bool,
    /// The value of `Content-Length` (one, however often it was repeated).
    pub content_length: Option<u64>,
    /// Total size of the header fields (names, values, separators).
    pub header_bytes: usize,
    /// A usable X-Request-ID from the client.
    pub request_id: Option<&'b [u8]>,
    /// The target was absolute-form, so Host is replaced by its authority.
    host_from_target: bool,
    names_fields: bool,
}

/// Keeps the client's X-Request-ID if it is 1–128 visible ASCII characters.
pub fn usable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(u8::is_ascii_graphic)
}

/// Parses a request head. `Ok(None)`: incomplete, read more.
#[allow(clippy::type_complexity)]
pub fn parse_request<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut HeaderSlots<'b>,
) -> Result<Option<(RequestMeta<'b>, &'h [httparse::Header<'b>], usize)>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots)? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(n) => n,
    };
    let (method, target, version) = (req.method, req.path, req.version);
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let meta = request_meta(
        method.unwrap_or("GET"),
        target.unwrap_or("/"),
        version.unwrap_or(1),
        headers,
    )?;
    Ok(Some((meta, headers, len)))
}

fn request_meta<'b>(
    method: &'b str,
    raw_target: &'b str,
    version: u8,
    headers: &[httparse::Header<'b>],
) -> Result<RequestMeta<'b>, HeadError> {
    let http10 = version == 0;
    let mut conn = ConnectionTokens::default();
    let mut host: Option<&'b str> = None;
    let mut host_count = 0;
    let mut upgrade = None;
    let mut expect_continue = false;
    let mut request_id = None;
    let mut header_bytes = 0;
    for h in headers {
        header_bytes += h.name.len() + h.value.len() + 4;
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            host_count += 1;
            host = Some(std::str::from_utf8(h.value).map_err(|_| HeadError::BadHost)?);
        } else if name.eq_ignore_ascii_case("connection") {
            conn.add(h.value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(h.value);
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("x-request-id") && usable_request_id(h.value) {
            request_id = Some(h.value);
        }
    }
    if host_count > 1 || (host_count == 0 && !http10) {
        return Err(HeadError::BadHost);
    }
    let fields = framing_fields(headers)?;
    let framing = match (fields.length, fields.encodings.is_empty()) {
        (Some(_), false) => return Err(HeadError::LengthAndEncoding),
        (_, false) if http10 => return Err(HeadError::BadTransferEncoding),
        (_, false) if !ends_in_chunked(&fields.encodings) => {
            return Err(HeadError::BadTransferEncoding)
        }
        (_, false) => Framing::Chunked,
        (Some(0) | None, true) => Framing::None,
        (Some(n), true) => Framing::Length(n),
    };
    let (authority, target) = split_target(raw_target)?;
    let (path, target) = if target.starts_with('?') {
        // `http://a.test?q`: the path is empty, so `/` (RFC 9112 §3.2.1).
        ("/", Cow::Owned(format!("/{target}")))
    } else {
        let path = target.split(['?', '#']).next().unwrap_or(target);
        (path, Cow::Borrowed(target))
    };
    Ok(RequestMeta {
        method,
        target,
        path,
        host: authority.or(host).unwrap_or(""),
        http10,
        framing,
        keep_alive: if http10 {
            conn.keep_alive && !conn.close
        } else {
            !conn.close
        },
        // Only WebSocket is proxied as an upgrade; anything else (h2c, ...)
        // goes on as an ordinary request without its Upgrade.
        upgrade: upgrade.filter(|v| conn.upgrade && !http10 && is_websocket(v)),
        expect_continue: expect_continue && !http10,
        content_length: fields.length,
        header_bytes,
        request_id,
        host_from_target: authority.is_some(),
        names_fields: conn.names_fields,
    })
}

/// `Upgrade: websocket` (the one protocol the gateway tunnels).
fn is_websocket(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"websocket")
}

/// Splits an absolute-form target into authority and origin form;
/// origin-form and `*` pass unchanged.
fn split_target(target: &str) -> Result<(Option<&str>, &str), HeadError> {
    if target.starts_with('/') || target == "*" {
        return Ok((None, target));
    }
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| {
            target
                .get(..scheme.len())
                .filter(|s| s.eq_ignore_ascii_case(scheme))
                .map(|_| &target[scheme.len()..])
        })
        .ok_or(HeadError::BadTarget)?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(HeadError::BadTarget);
    }
    Ok((Some(authority), if path.is_empty() { "/" } else { path }))
}

/// How the client reached us, formatted once per connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub server_port: Option<String>,
    pub tls: bool,
}

/// Writes the request head sent upstream: origin-form target, HTTP/1.1,
/// hop-by-hop fields dropped, one `Content-Length` with the value the body
/// is framed by, forwarding fields set (X-Forwarded-For appended to, the
/// others overwritten so clients cannot spoof them). Field names with `_`
/// are dropped unless `allow_underscores` (CGI-style backends read
/// `X_Forwarded_For` and `X-Forwarded-For` as the same variable).
pub fn write_upstream_request(
    out: &mut Vec<u8>,
    meta: &RequestMeta<'_>,
    headers: &[httparse::Header<'_>],
    client: &ClientInfo,
    request_id: &[u8],
    allow_underscores: bool,
) {
    out.clear();
    out.extend_from_slice(meta.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(meta.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for: Option<Vec<u8>> = None;
    let mut host_written = false;
    for h in headers {
        let name = h.name;
        if is_hop_by_hop(name) || is_forwarding_field(name) {
            if name.eq_ignore_ascii_case("x-forwarded-for") {
                let v = h.value.trim_ascii();
                if !v.is_empty() {
                    let chain = forwarded_for.get_or_insert_with(Vec::new);
                    if !chain.is_empty() {
                        chain.extend_from_slice(b", ");
                    }
                    chain.extend_from_slice(v);
                }
            }
            continue;
        }
        if meta.names_fields && listed_in_connection(headers, name) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length")
            || (!allow_underscores && name.as_bytes().contains(&b'_'))
        {
            continue;
        }
        if name.eq_ignore_ascii_case("host") {
            if meta.host_from_target {
                continue;
            }
            host_written = true;
        }
        field(out, name.as_bytes(), h.value);
    }
    if !host_written {
        // HTTP/1.1 requires Host; with no authority it is sent empty (RFC 9112 §3.2).
        field(out, b"Host", meta.host.as_bytes());
    }
    if let Some(n) = meta.content_length {
        content_length_field(out, n);
    }
    if let Some(protocol) = meta.upgrade {
        field(out, b"Connection", b"upgrade");
        field(out, b"Upgrade", protocol);
    }
    write_forwarding_fields(out, forwarded_for.as_deref(), meta.host, client, request_id);
    out.extend_from_slice(b"\r\n");
}

/// X-Forwarded-For (the client's chain, if any, then the client), X-Real-IP,
/// X-Forwarded-Proto/-Host/-Port and X-Request-ID.
pub fn write_forwarding_fields(
    out: &mut Vec<u8>,
    forwarded_for: Option<&[u8]>,
    host: &str,
    client: &ClientInfo,
    request_id: &[u8],
) {
    if let Some(ip) = &client.ip {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if let Some(chain) = forwarded_for {
            out.extend_from_slice(chain);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(ip.as_bytes());
        out.extend_from_slice(b"\r\n");
        field(out, b"X-Real-IP", ip.as_bytes());
    } else if let Some(chain) = forwarded_for {
        field(out, b"X-Forwarded-For", chain);
    }
    let proto: &[u8] = if client.tls { b"https" } else { b"http" };
    field(out, b"X-Forwarded-Proto", proto);
    if !host.is_empty() {
        field(out, b"X-Forwarded-Host", host.as_bytes());
    }
    if let Some(port) = &client.server_port {
        field(out, b"X-Forwarded-Port", port.as_bytes());
    }
    field(out, b"X-Request-ID", request_id);
}

pub fn is_forwarding_field(name: &str) -> bool {
    FORWARDING.iter().any(|f| name.eq_ignore_ascii_case(f))
}

/// `Content-Length: n`, without allocating.
pub fn content_length_field(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    field(out, b"Content-Length", &digits[i..]);
}

pub fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What the proxy needs to know about a response head.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta {
    pub status: u16,
    pub framing: Framing,
    /// The upstream connection may be reused once the body is read.
    pub reusable: bool,
    pub head_len: usize,
    /// The value of `Content-Length` (one, however often it was repeated).
    pub content_length: Option<u64>,
}

/// A parsed response head, borrowed from the read buffer.
#[derive(Debug)]
pub struct ResponseHead<'h, 'b> {
    pub meta: ResponseMeta,
    pub reason: &'b str,
    pub headers: &'h [httparse::Header<'b>],
}

/// Parses a response head. `Ok(None)`: incomplete, read more.
pub fn parse_response<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut HeaderSlots<'b>,
    request_is_head: bool,
) -> Result<Option<ResponseHead<'h, 'b>>, HeadError> {
    let mut resp = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut resp, buf, slots)? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(n) => n,
    };
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let reason = resp.reason.unwrap_or("");
    let headers: &'h [httparse::Header<'b>] = resp.headers;
    let mut conn = ConnectionTokens::default();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            conn.add(h.value);
        }
    }
    let fields = framing_fields(headers)?;
    let framing =
        if request_is_head || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::None
        } else if !fields.encodings.is_empty() {
            if ends_in_chunked(&fields.encodings) {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else {
            match fields.length {
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        };
    let reusable = framing != Framing::UntilClose
        && if http10 {
            conn.keep_alive && !conn.close
        } else {
            !conn.close
        };
    let meta = ResponseMeta {
        status,
        framing,
        reusable,
        head_len: len,
        content_length: fields.length,
    };
    Ok(Some(ResponseHead {
        meta,
        reason,
        headers,
    }))
}

/// How the client side of a response is framed.
#[derive(Debug, Clone, Copy)]
pub struct ClientFraming<'a> {
    /// The client connection closes after this response.
    pub close: bool,
    /// An HTTP/1.0 client that asked for keep-alive.
    pub http10_keep_alive: bool,
    /// A chunked body is sent decoded (to an HTTP/1.0 client).
    pub dechunk: bool,
    /// `Strict-Transport-Security` to set.
    pub hsts: Option<&'a [u8]>,
}

/// Writes the response head sent to the client.
pub fn write_client_response(
    out: &mut Vec<u8>,
    resp: &ResponseHead<'_, '_>,
    how: ClientFraming<'_>,
) {
    let meta = &resp.meta;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status_digits(meta.status).as_slice());
    out.push(b' ');
    out.extend_from_slice(resp.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let names_fields = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .any(|h| {
            let mut t = ConnectionTokens::default();
            t.add(h.value);
            t.names_fields
        });
    let switching = meta.status == 101;
    // With Transfer-Encoding present, Content-Length must not reach the
    // client (RFC 9112 §6.3): it would make the framing ambiguous.
    let encoded = resp
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    for h in resp.headers.iter() {
        let name = h.name;
        if is_hop_by_hop(name) {
            if switching && name.eq_ignore_ascii_case("upgrade") {
                field(out, b"Upgrade", h.value);
            }
            continue;
        }
        if names_fields && listed_in_connection(resp.headers, name) {
            continue;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") && how.dechunk {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            // Written once below (a repeated or listed value as one).
            continue;
        }
        if how.hsts.is_some() && name.eq_ignore_ascii_case("strict-transport-security") {
            continue;
        }
        field(out, name.as_bytes(), h.value);
    }
    if let (Some(n), false) = (meta.content_length, encoded) {
        content_length_field(out, n);
    }
    if let Some(hsts) = how.hsts {
        field(out, b"Strict-Transport-Security", hsts);
    }
    if switching {
        field(out, b"Connection", b"upgrade");
    } else if how.close {
        field(out, b"Connection", b"close");
    } else if how.http10_keep_alive {
        field(out, b"Connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
}

fn status_digits(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

#[cfg(test)]
mod tests;
