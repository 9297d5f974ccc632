//! A minimal blocking HTTP/1.1 client for checks between runs: one keepalive
//! connection, `GET` with a Host header, `Content-Length` bodies only (what
//! the upstreams and proxies under test send).

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
        let reused = self.conn.is_some();
        match self.try_get(host, path) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.conn = None;
                self.try_get(host, path)
            }
            Err(e) => Err(e),
        }
    }

    fn try_get(&mut self, host: &str, path: &str) -> Result<Reply, ProbeError> {
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
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gatehouse-bench\r\n\r\n"
            );
            conn.get_mut().write_all(request.as_bytes()).map_err(io)?;
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
