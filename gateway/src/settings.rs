//! Proxy settings shared by the HTTP/1.x and HTTP/2 paths, and the HTTPS
//! redirect target.

use std::time::Duration;

/// Upstream connection settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// Connection attempts per request (the first try included).
    pub connect_attempts: u8,
}

/// How plain HTTP relates to HTTPS.
#[derive(Debug, Clone, Default)]
pub struct HttpsConfig {
    /// The port HTTP→HTTPS redirects point to; `None` when there is no HTTPS
    /// listener (then nothing is redirected).
    pub redirect_port: Option<u16>,
    /// `Strict-Transport-Security` value added to responses sent over TLS.
    pub hsts: Option<http::HeaderValue>,
}

/// ACME HTTP-01 challenges must stay reachable over plain HTTP.
pub const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// `https://host[:port]/path?query`; the port is left out when it is 443.
pub fn https_location(host: &str, port: u16, path_and_query: &str) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{port}{path_and_query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_locations() {
        let cases = [
            (
                "default_port_omitted",
                "a.test",
                443,
                "/x?y=1",
                "https://a.test/x?y=1",
            ),
            (
                "other_port_kept",
                "a.test",
                8443,
                "/",
                "https://a.test:8443/",
            ),
            ("ipv6_bracketed", "::1", 8443, "/p", "https://[::1]:8443/p"),
        ];
        for (name, host, port, pq, want) in cases {
            assert_eq!(https_location(host, port, pq), want, "case {name}");
        }
    }
}
