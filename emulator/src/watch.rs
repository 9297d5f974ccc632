//! Watch streams: newline-delimited JSON events replayed from the store's
//! history, with initial events, BOOKMARKs, timeouts, selector transitions
//! (an object entering or leaving the selection is ADDED or DELETED for this
//! watcher) and 410 Gone as an ERROR event when the history no longer reaches
//! back to the requested resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::engine::Selectors;
use super::error::ApiError;
use super::meta;
use super::representation::{self, IncludeObject, Representation};
use super::server::Shared;
use super::state::{present, Target};
use super::store::EventType;

/// A parsed watch request.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub target: Target,
    pub selectors: Selectors,
    /// `resourceVersion` as given ("" when absent).
    pub resource_version: String,
    pub send_initial_events: Option<bool>,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub representation: Representation,
    pub include_object: IncludeObject,
}

/// Where a watch starts.
enum Start {
    /// Send the current objects as ADDED, then follow changes from `rv`.
    Snapshot,
    /// Follow changes from the current version on.
    Now,
    /// Replay changes after this version.
    From(u64),
}

/// Validates the request and starts the stream task; the receiver yields
/// the encoded events.
pub fn start(
    shared: Arc<Shared>,
    request: WatchRequest,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let start = match (
        request.resource_version.as_str(),
        request.send_initial_events,
    ) {
        (_, Some(true)) | ("" | "0", None) => Start::Snapshot,
        ("" | "0", Some(false)) => Start::Now,
        (rv, _) => Start::From(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion: {rv:?}")))?,
        ),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut stream = WatchStream {
            shared,
            request,
            tx,
            sent_any: false,
        };
        stream.run(start).await;
    });
    Ok(rx)
}

struct WatchStream {
    shared: Arc<Shared>,
    request: WatchRequest,
    tx: mpsc::Sender<Bytes>,
    sent_any: bool,
}

/// Events ready to send, computed under the lock and sent after it.
type Frames = Vec<Value>;

impl WatchStream {
    async fn run(&mut self, start: Start) {
        let mut changes = self.shared.changes.subscribe();
        let mut shutdown = self.shared.shutdown.clone();
        let mut disconnects = self.shared.disconnects.subscribe();
        let (mut cursor, initial) = self.begin(start);
        for frame in initial {
            if !self.send(frame).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(self.request.timeout);
        tokio::pin!(deadline);
        let mut bookmark_tick = tokio::time::interval(self.shared.config.bookmark_interval);
        bookmark_tick.tick().await;
        loop {
            let bookmark_due = tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    false
                }
                _ = bookmark_tick.tick(), if self.request.bookmarks => true,
                () = &mut deadline => return,
                () = self.tx.closed() => return,
                _ = shutdown.changed() => return,
                _ = disconnects.changed() => return,
            };
            let (frames, next, gone) = self.catch_up(cursor);
            cursor = next;
            for frame in frames {
                if !self.send(frame).await {
                    return;
                }
            }
            if gone {
                return;
            }
            if bookmark_due {
                let bookmark = self.bookmark(cursor, false);
                if !self.send(bookmark).await {
                    return;
                }
            }
        }
    }

    /// The starting cursor and the events to send first.
    fn begin(&mut self, start: Start) -> (u64, Frames) {
        let Ok(state) = self.shared.state.lock() else {
            return (0, vec![gone_event("the emulator state is unavailable")]);
        };
        let current = state.store.current_rv();
        match start {
            Start::Snapshot => {
                let target = &self.request.target;
                let namespace = target
                    .namespace
                    .as_deref()
                    .filter(|_| target.info.namespaced);
                let mut frames: Frames = state
                    .store
                    .list(&target.key(), namespace, None)
                    .into_iter()
                    .map(|o| present(&o, &target.info, &target.version))
                    .filter(|o| self.request.selectors.matches(o))
                    .map(|o| json!({"type": "ADDED", "object": o}))
                    .collect();
                if self.request.send_initial_events == Some(true) {
                    frames.push(self.bookmark(current, true));
                }
                (current, frames)
            }
            Start::Now => (current, Vec::new()),
            Start::From(rv) => {
                if rv < state.store.compacted_rv() {
                    let message = format!(
                        "too old resource version: {rv} ({})",
                        state.store.compacted_rv()
                    );
                    return (rv, vec![gone_event(&message)]);
                }
                drop(state);
                let (frames, next, _) = self.catch_up(rv);
                (next, frames)
            }
        }
    }

    /// Events after `cursor` that this watch should see; the new cursor; and
    /// whether the history was compacted past the cursor (410 sent).
    fn catch_up(&self, cursor: u64) -> (Frames, u64, bool) {
        let Ok(state) = self.shared.state.lock() else {
            return (
                vec![gone_event("the emulator state is unavailable")],
                cursor,
                true,
            );
        };
        let Some(events) = state.store.events_after(cursor) else {
            let message = format!(
                "too old resource version: {cursor} ({})",
                state.store.compacted_rv()
            );
            return (vec![gone_event(&message)], cursor, true);
        };
        let target = &self.request.target;
        let key = target.key();
        let namespace = target
            .namespace
            .as_deref()
            .filter(|_| target.info.namespaced);
        let selectors = &self.request.selectors;
        let mut frames = Frames::new();
        for event in events {
            if event.resource != key
                || namespace.is_some_and(|ns| ns != meta::namespace(&event.object))
            {
                continue;
            }
            // Selectors see objects as this API shows them.
            let object = present(&event.object, &target.info, &target.version);
            let now_matches = selectors.matches(&object);
            let matched_before = event
                .previous
                .as_deref()
                .is_some_and(|p| selectors.matches(&present(p, &target.info, &target.version)));
            let event_type = match event.event_type {
                EventType::Added if now_matches => EventType::Added,
                EventType::Deleted if matched_before || now_matches => EventType::Deleted,
                EventType::Modified => match (matched_before, now_matches) {
                    (true, true) => EventType::Modified,
                    (false, true) => EventType::Added,
                    (true, false) => EventType::Deleted,
                    (false, false) => continue,
                },
                _ => continue,
            };
            frames.push(json!({"type": event_type.as_str(), "object": object}));
        }
        (frames, state.store.current_rv().max(cursor), false)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let target = &self.request.target;
        let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({
            "type": "BOOKMARK",
            "object": {
                "kind": target.info.kind,
                "apiVersion": target.api_version(),
                "metadata": metadata,
            }
        })
    }

    /// Renders one event in the requested representation and sends it.
    async fn send(&mut self, mut event: Value) -> bool {
        let is_object_event = matches!(
            event.get("type").and_then(Value::as_str),
            Some("ADDED" | "MODIFIED" | "DELETED")
        );
        if is_object_event {
            let target = &self.request.target;
            let object = event["object"].take();
            event["object"] = match &self.request.representation {
                Representation::Full => object,
                Representation::Metadata => representation::partial_metadata(&object),
                Representation::Table(version) => representation::table(
                    &target.info,
                    &[object],
                    self.request.include_object,
                    version,
                    None,
                    !self.sent_any,
                ),
            };
            self.sent_any = true;
        }
        let mut line = event.to_string().into_bytes();
        line.push(b'\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }
}

fn gone_event(message: &str) -> Value {
    json!({"type": "ERROR", "object": ApiError::gone(message).to_status()})
}
