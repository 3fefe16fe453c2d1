//! The subscription protocol of a live-event connection, shared by the local `GET /ws` and the
//! API Gateway WebSocket API: client messages are `{type, data}`: `ping` (answered `pong`),
//! `subscribe` (answered `subscription_confirmed`; `data` may hold `event_type` or
//! `event_types` (e.g. `alert`, `agent_result`), `agents` (kebab-case names) and `from_offset`
//! to replay persisted events first), `unsubscribe`, `request_agent_status` (answered
//! `agent_status`) and `close`. A connection's filters are stored with it, so any process can
//! tell which events it wants.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::events::EventStream;
use crate::filters::{event_message, message, names, Filters};
use crate::mesh::Mesh;
use crate::metrics::Metrics;
use crate::store::{now_ms, off_thread, ConnectionRecord, StateStore};

/// Longest one message may wait to be written to a client before the client is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most persisted events one `subscribe` replays.
pub const MAX_REPLAY: u32 = 10_000;

/// What a connection needs from the server.
#[derive(Clone)]
pub struct Hub {
    pub events: Arc<dyn EventStream>,
    pub store: Arc<dyn StateStore>,
    pub metrics: Arc<Metrics>,
    /// Answers `request_agent_status` (absent in tests of the connection alone).
    pub mesh: Option<Arc<Mesh>>,
    pub send_timeout: Duration,
    /// Most persisted events one `subscribe` replays ([`MAX_REPLAY`]); a longer replay says
    /// `truncated` and where to continue.
    pub max_replay: u32,
    /// Where a long-lived connection's filter changes go: its writer task, which stores the
    /// latest off the message path. `None`: stored before the reply (API Gateway's functions,
    /// whose one invocation is the whole message).
    pub background_writes: Option<tokio::sync::watch::Sender<Filters>>,
}

/// What the connection does after a client message.
pub enum Reply {
    Send(Vec<String>),
    Close,
}

/// Stores the connection with its filters: through the connection's writer task when it has
/// one (the reply does not wait), else before returning.
pub async fn save_connection(hub: &Hub, connection_id: &str, filters: &Filters) {
    match &hub.background_writes {
        Some(writes) => {
            writes.send_replace(filters.clone());
        }
        None => store_connection(&hub.store, connection_id, filters).await,
    }
}

/// Writes the connection's record with `filters`.
pub async fn store_connection(store: &Arc<dyn StateStore>, connection_id: &str, filters: &Filters) {
    let record = ConnectionRecord {
        connection_id: connection_id.to_string(),
        connected_at_ms: now_ms(),
        filters: filters.to_json(),
    };
    if let Err(e) = off_thread(store, move |s| s.put_connection(&record)).await {
        tracing::warn!(error = %e, "recording a WebSocket connection failed");
    }
}

/// Answers one client message (and updates the connection's filters and replay position).
pub async fn handle_client_message(
    hub: &Hub,
    connection_id: &str,
    text: &str,
    filters: &mut Filters,
    last_sent: &mut i64,
) -> Reply {
    let error = |message: String, field: &str| Reply::Send(vec![message_error(message, field)]);
    let request: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return error("a message must be a JSON object".into(), "message"),
        Err(e) => return error(format!("the message is not JSON: {e}"), "message"),
    };
    let data = request.get("data").cloned().unwrap_or(Value::Null);
    match request.get("type").and_then(Value::as_str) {
        Some("ping") => Reply::Send(vec![message("pong", data)]),
        Some("subscribe") => {
            // The prototype's clients send the filter at the top level; accept both.
            let source = if data.is_object() { &data } else { &request };
            let (types, agents) = match (
                names(source, "event_types"),
                names(source, "event_type"),
                names(source, "agents"),
            ) {
                (Ok(mut a), Ok(b), Ok(agents)) => {
                    a.extend(b);
                    (a, agents)
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error(e, "data"),
            };
            *filters = Filters {
                event_types: types,
                agents,
                paused: false,
            };
            save_connection(hub, connection_id, filters).await;
            let mut replayed = vec![];
            let mut continue_from = None;
            if let Some(from) = source.get("from_offset") {
                let Some(from) = from.as_i64().filter(|f| *f >= 0) else {
                    return error("`data.from_offset` must be a whole number >= 0".into(), "data.from_offset");
                };
                match hub.events.replay(from, hub.max_replay).await {
                    Ok(events) => {
                        if events.len() >= hub.max_replay as usize {
                            continue_from = events.last().map(|e| e.offset + 1);
                        }
                        for event in events {
                            *last_sent = (*last_sent).max(event.offset);
                            if filters.matches(&event) {
                                replayed.push(event_message(&event));
                            }
                        }
                    }
                    Err(e) => return error(format!("replay failed: {e}"), "data.from_offset"),
                }
            }
            let mut confirmed = json!({
                "filters": filters.to_json(),
                "replayed": replayed.len(),
                "connection_id": connection_id,
                "truncated": continue_from.is_some(),
            });
            if let Some(offset) = continue_from {
                // The replay stopped at its bound: subscribe again from here for the rest.
                confirmed["continue_from_offset"] = json!(offset);
            }
            let mut messages = vec![message("subscription_confirmed", confirmed)];
            messages.extend(replayed);
            Reply::Send(messages)
        }
        Some("unsubscribe") => {
            filters.paused = true;
            save_connection(hub, connection_id, filters).await;
            Reply::Send(vec![message("unsubscribed", json!({}))])
        }
        Some("request_agent_status") => match &hub.mesh {
            Some(mesh) => {
                let status = crate::status::agents_status(mesh).await;
                Reply::Send(vec![message(
                    "agent_status",
                    serde_json::to_value(status).unwrap_or(Value::Null),
                )])
            }
            None => error("agent status is not available here".into(), "type"),
        },
        Some("close") => Reply::Close,
        Some(other) => error(
            format!("unknown message type `{other}`; expected ping, subscribe, unsubscribe, request_agent_status or close"),
            "type",
        ),
        None => error("the message needs a string `type`".into(), "type"),
    }
}

fn message_error(error: String, field: &str) -> String {
    message("error", json!({"error": error, "field": field}))
}
