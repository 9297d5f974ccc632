//! A gateway in front of one scripted fake upstream, for tests that speak
//! raw HTTP/1.x to the gateway and look at exactly what it forwarded.

use crate::local::{catch_all_route, LocalError, LocalGateway};
use crate::raw_http::{Action, Conn, FakeUpstream, Request, Response, READY_PATH};

/// Host of the barrier requests (every host reaches the upstream).
const BARRIER_HOST: &str = "barrier.test";

/// A fake upstream answering with a handler, and a gateway (controller in
/// local mode) routing every host and path to it.
pub struct ProxyRig {
    pub upstream: FakeUpstream,
    pub lg: LocalGateway,
}

impl ProxyRig {
    /// Starts both, with extra gateway flags, and waits until a request
    /// reaches the upstream through the gateway.
    pub async fn start(
        gateway_args: &[&str],
        handler: impl Fn(&Request) -> Action + Send + Sync + 'static,
    ) -> Result<ProxyRig, LocalError> {
        let upstream = FakeUpstream::start(handler)
            .await
            .map_err(|source| LocalError::Io {
                context: "starting the fake upstream".into(),
                source,
            })?;
        let lg = LocalGateway::start(gateway_args).await?;
        lg.write("up.yaml", &catch_all_route(upstream.addr))?;
        let ready = lg
            .eventually(BARRIER_HOST, READY_PATH, |r| {
                r.status == 200 && r.body == "ready"
            })
            .await;
        if ready.status != 200 || ready.body != "ready" {
            return Err(LocalError::Timeout {
                what: format!("the route to the fake upstream never worked\n{}", lg.logs()),
                after: std::time::Duration::from_secs(10),
            });
        }
        Ok(ProxyRig { upstream, lg })
    }

    /// A new client connection to the gateway's HTTP listener.
    pub async fn conn(&self) -> Conn {
        match Conn::connect(self.lg.http).await {
            Ok(c) => c,
            Err(e) => panic!("cannot connect to the gateway: {e}\n{}", self.lg.logs()),
        }
    }

    /// Sends `request` on `conn` and reads the response (to `method`);
    /// panics with what the upstream saw and the logs if none comes.
    pub async fn exchange(&self, conn: &mut Conn, method: &str, request: &[u8]) -> Response {
        if let Err(e) = conn.send(request).await {
            panic!("cannot send: {e}\n{}", self.lg.logs());
        }
        match conn.read_response(method).await {
            Ok(r) => r,
            Err(e) => panic!(
                "no response to {:?}: {e}\nthe upstream saw: {:?}\n{}",
                String::from_utf8_lossy(&request[..request.len().min(300)]),
                self.upstream.seen(),
                self.lg.logs()
            ),
        }
    }

    /// A GET of `path` on a fresh connection that must be answered 200 and
    /// recorded by the upstream: it orders everything forwarded before it,
    /// and shows the gateway still serves honest clients.
    pub async fn barrier(&self, path: &str) {
        let mut conn = self.conn().await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {BARRIER_HOST}\r\n\r\n");
        let r = self.exchange(&mut conn, "GET", request.as_bytes()).await;
        assert_eq!(r.status, 200, "barrier request {path}: {r:?}");
        assert!(
            self.upstream.requests().iter().any(|q| q.target == path),
            "barrier {path} answered but not recorded"
        );
    }

    /// Sends `bytes` on a fresh connection and, while that connection is
    /// open, serves an honest request on another; the gateway must answer
    /// the first with one of `statuses`, close it, and forward nothing of
    /// it.
    pub async fn assert_refused(&self, case: &str, bytes: &[u8], statuses: &[u16]) {
        let before = self.upstream.requests().len();
        let mut conn = self.conn().await;
        // The gateway may refuse before the last byte: a failed write is fine.
        let _ = conn.send(bytes).await;
        let during = format!("/during-{case}");
        self.barrier(&during).await;
        let r = conn
            .read_response("POST")
            .await
            .unwrap_or_else(|e| panic!("case {case}: no response: {e}\n{}", self.lg.logs()));
        assert!(statuses.contains(&r.status), "case {case}: {r:?}");
        conn.expect_closed()
            .await
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        let after = format!("/after-{case}");
        self.barrier(&after).await;
        let targets: Vec<String> = self.upstream.requests()[before..]
            .iter()
            .map(|r| r.target.clone())
            .collect();
        assert_eq!(
            targets,
            [during, after],
            "case {case}: something was forwarded"
        );
    }
}
