//! Responses the gateway answers itself.

use super::head::field;

pub const NOT_FOUND: &[u8] = b"404 Not Found: no Ingress rule matches this host and path\n";
pub const NO_ENDPOINTS: &[u8] = b"503 Service Unavailable: the backend has no ready endpoints\n";
pub const HEADERS_TOO_LARGE: &[u8] = b"431 Request Header Fields Too Large\n";
pub const BAD_REQUEST: &[u8] = b"400 Bad Request\n";
pub const REQUEST_TIMEOUT: &[u8] = b"408 Request Timeout: the request body stopped arriving\n";
pub const BAD_GATEWAY: &[u8] = b"502 Bad Gateway\n";
pub const GATEWAY_TIMEOUT: &[u8] = b"504 Gateway Timeout\n";

/// A response of our own.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub status: u16,
    pub body: &'static [u8],
    pub location: Option<&'a str>,
    pub hsts: Option<&'a [u8]>,
    /// The connection closes after this response.
    pub close: bool,
    pub http10_keep_alive: bool,
}

impl Reply<'_> {
    pub fn new(status: u16, body: &'static [u8]) -> Self {
        Reply {
            status,
            body,
            location: None,
            hsts: None,
            close: false,
            http10_keep_alive: false,
        }
    }

    /// Writes the whole response (head and body) to `out`.
    pub fn write(&self, out: &mut Vec<u8>, is_head: bool) {
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(location) = self.location {
            field(out, b"Location", location.as_bytes());
        }
        if !self.body.is_empty() {
            field(out, b"Content-Type", b"text/plain; charset=utf-8");
        }
        field(
            out,
            b"Content-Length",
            self.body.len().to_string().as_bytes(),
        );
        field(out, b"Cache-Control", b"no-store");
        if let Some(hsts) = self.hsts {
            field(out, b"Strict-Transport-Security", hsts);
        }
        if self.close {
            field(out, b"Connection", b"close");
        } else if self.http10_keep_alive {
            field(out, b"Connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        if !is_head {
            out.extend_from_slice(self.body);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        308 => "Permanent Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_framed() {
        let mut out = Vec::new();
        let mut r = Reply::new(404, NOT_FOUND);
        r.close = true;
        r.write(&mut out, false);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains(&format!("Content-Length: {}\r\n", NOT_FOUND.len())));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with(std::str::from_utf8(NOT_FOUND).unwrap()));

        let mut redirect = Reply::new(308, b"");
        redirect.location = Some("https://a.test/x");
        redirect.write(&mut out, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Location: https://a.test/x\r\n"));
        assert!(text.contains("Content-Length: 0\r\n"));
        assert!(!text.contains("Content-Type"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
