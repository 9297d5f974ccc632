//! Handshake metrics. Successes are counted by a Pingora callback. Failures
//! happen inside Pingora's listener, which only logs them; a tracing layer
//! turns those log events into a counter by reason (and keeps them out of
//! the error log: a scanner or a client that hangs up is not an error here).

use async_trait::async_trait;
use pingora_core::listeners::TlsAccept;
use pingora_core::protocols::tls::TlsRef;
use std::any::Any;
use std::sync::Arc;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};

pub const HANDSHAKES: &str = "gatehouse_gateway_tls_handshakes_total";
pub const HANDSHAKE_FAILURES: &str = "gatehouse_gateway_tls_handshake_failures_total";

/// Counts completed handshakes by TLS version.
pub struct HandshakeCounter;

#[async_trait]
impl TlsAccept for HandshakeCounter {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let version = tls.version().unwrap_or("unknown");
        metrics::counter!(HANDSHAKES, "version" => version).increment(1);
        None
    }
}

/// Classifies a handshake failure from its error text.
pub fn failure_reason(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    let has = |s: &str| m.contains(s);
    if has("timeout") || has("timed out") {
        "timeout"
    } else if has("protocol version") || has("protocolversion") {
        "protocol_version"
    } else if has("cipher") {
        "no_shared_cipher"
    } else if has("received fatal alert") || has("alert") {
        "client_alert"
    } else if has("invalid message") || has("invalidmessage") || has("corrupt message") {
        "invalid_message"
    } else if has("eof") || has("closed") || has("reset") || has("broken pipe") {
        "connection_closed"
    } else {
        "other"
    }
}

const LISTENER_TARGET: &str = "pingora_core::services::listening";

/// Pingora logs through the `log` crate; bridged events carry the original
/// target in a `log.target` field rather than in their metadata.
fn is_handshake_failure(event: &Event<'_>) -> Option<String> {
    let mut visitor = MessageVisitor::default();
    event.record(&mut visitor);
    let target = visitor
        .log_target
        .as_deref()
        .unwrap_or(event.metadata().target());
    (target == LISTENER_TARGET && visitor.message.starts_with("Downstream handshake"))
        .then_some(visitor.message)
}

/// Counts Pingora's handshake-failure events.
pub struct HandshakeFailureLayer;

impl<S: Subscriber> Layer<S> for HandshakeFailureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if let Some(message) = is_handshake_failure(event) {
            metrics::counter!(HANDSHAKE_FAILURES, "reason" => failure_reason(&message))
                .increment(1);
        }
    }
}

/// Keeps handshake failures out of the log output (they are counted), unless
/// `GATEHOUSE_LOG_HANDSHAKE_ERRORS=1`.
pub struct QuietHandshakeFailures {
    pub log_them: bool,
}

impl<S: Subscriber> Filter<S> for QuietHandshakeFailures {
    fn enabled(&self, _meta: &tracing::Metadata<'_>, _ctx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _ctx: &Context<'_, S>) -> bool {
        self.log_them || is_handshake_failure(event).is_none()
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    log_target: Option<String>,
}

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "log.target" => self.log_target = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "log.target" => self.log_target = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let cases = [
            (
                "version",
                "TLS accept() failed: peer is incompatible: no protocol versions in common",
                "protocol_version",
            ),
            (
                "cipher",
                "peer is incompatible: no cipher suites in common",
                "no_shared_cipher",
            ),
            (
                "alert",
                "received fatal alert: BadCertificate",
                "client_alert",
            ),
            (
                "plain_http",
                "received corrupt message of type InvalidContentType",
                "invalid_message",
            ),
            ("eof", "unexpected EOF", "connection_closed"),
            ("timeout", "Downstream handshake timeout", "timeout"),
        ];
        for (name, msg, want) in cases {
            assert_eq!(failure_reason(msg), want, "case {name}");
        }
    }
}
