//! A minimal blocking HTTP/1.1 client for checks between runs and for
//! writes to the Kubernetes API emulator: one keepalive connection, any
//! method with a Host header and an optional body, `Content-Length` bodies
//! only (what the upstreams, proxies and the emulator send).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}: malformed response: {what}")]
    Malformed { addr: SocketAddr, what: String },
}

/// A response's status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keepalive connection to `addr`.
pub struct Probe {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

impl Probe {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Probe {
            addr,
            conn: None,
            timeout,
        }
    }

    /// `GET path` with `Host: host`. Reconnects once if a kept-alive
    /// connection turned out to be closed.
    pub fn get(&mut self, host: &str, path: &str) -> Result<Reply, ProbeError> {
        self.send(&Request {
            method: "GET",
            host,
            path,
            body: None,
        })
    }

    /// Sends one request and reads its reply. Reconnects once if a
    /// kept-alive connection turned out to be closed (callers only send
    /// requests that may be repeated: GETs and idempotent writes, or writes
    /// whose repetition fails visibly, as a second create does).
    pub fn send(&mut self, request: &Request<'_>) -> Result<Reply, ProbeError> {
        let reused = self.conn.is_some();
        match self.try_send(request) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.conn = None;
                self.try_send(request)
            }
            Err(e) => Err(e),
        }
    }

    fn try_send(&mut self, request: &Request<'_>) -> Result<Reply, ProbeError> {
        let addr = self.addr;
        let io = |source| ProbeError::Io { addr, source };
        let malformed = |what: &str| ProbeError::Malformed {
            addr,
            what: what.to_owned(),
        };
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
            stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
            stream.set_nodelay(true).map_err(io)?;
            self.conn = Some(BufReader::new(stream));
        }
        let result = (|| {
            let conn = self
                .conn
                .as_mut()
                .ok_or_else(|| malformed("no connection"))?;
            conn.get_mut().write_all(&request.encode()).map_err(io)?;
            let mut line = String::new();
            conn.read_line(&mut line).map_err(io)?;
            let status: u16 = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| malformed("status line"))?;
            let mut length = 0usize;
            let mut close = false;
            loop {
                line.clear();
                conn.read_line(&mut line).map_err(io)?;
                let header = line.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').ok_or_else(|| malformed("header"))?;
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().map_err(|_| malformed("content-length"))?;
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(malformed("chunked bodies are not supported"));
                }
            }
            let mut body = vec![0; length];
            conn.read_exact(&mut body).map_err(io)?;
            Ok((Reply { status, body }, close))
        })();
        match result {
            Ok((reply, close)) => {
                if close {
                    self.conn = None;
                }
                Ok(reply)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

/// One request: method, Host, path and an optional body with its type.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// Content-Type and bytes.
    pub body: Option<(&'a str, &'a [u8])>,
}

impl Request<'_> {
    /// The request as sent: head, then the body with its Content-Length.
    fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gatehouse-bench\r\n",
            self.method, self.path, self.host
        )
        .into_bytes();
        if let Some((content_type, body)) = self.body {
            out.extend_from_slice(
                format!(
                    "Content-Type: {content_type}\r\nAccept: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// Waits until `addr` accepts connections.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `n` distinct free loopback ports: each stays bound until all are chosen,
/// so the kernel cannot hand out one port twice.
pub fn free_ports(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    held.iter().map(|l| l.local_addr()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_a_content_length_reply_and_reuses_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            for body in ["one", "three"] {
                let mut line = String::new();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" {
                        break;
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                reader.get_mut().write_all(reply.as_bytes()).unwrap();
            }
        });
        let mut probe = Probe::new(addr, Duration::from_secs(5));
        assert_eq!(probe.get("a", "/").unwrap().body, b"one");
        assert_eq!(
            probe.get("a", "/").unwrap(),
            Reply {
                status: 200,
                body: b"three".to_vec()
            }
        );
        server.join().unwrap();
    }
}
