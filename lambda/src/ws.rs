//! `GET /ws`: live events over a WebSocket.
//!
//! Client messages are `{type, data}`: `ping` (answered `pong`), `subscribe` (answered
//! `subscription_confirmed`; `data` may hold `event_type` or `event_types` (e.g. `alert`,
//! `agent_result`), `agents` (kebab-case names) and `from_offset` to replay persisted events
//! first), `unsubscribe`, and `request_agent_status` (answered `agent_status`). The server
//! sends every event (`{type, data, timestamp, offset, agent, result_id}`) that matches the
//! connection's filters, in offset order; with no `subscribe`, every event. A client that
//! falls more than [`crate::events::SUBSCRIBER_BUFFER`] events behind gets a `lagged`
//! message saying how many it missed and where to replay from; one that does not read for
//! [`SEND_TIMEOUT`] is dropped. Neither slows the other connections.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::events::EventStream;
use crate::metrics::Metrics;
use crate::store::{now_ms, off_thread, ConnectionRecord, Event, StateStore};
use crate::AppState;

/// Longest one message may wait to be written to a client before the client is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message a client may send.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;
/// Most persisted events one `subscribe` replays.
pub const MAX_REPLAY: u32 = 10_000;

/// What a connection needs from the server.
#[derive(Clone)]
pub struct Hub {
    pub events: Arc<dyn EventStream>,
    pub store: Arc<dyn StateStore>,
    pub metrics: Arc<Metrics>,
    /// Answers `request_agent_status` (absent in tests of the connection alone).
    pub state: Option<Arc<AppState>>,
    pub send_timeout: Duration,
}

/// Upgrades to a WebSocket carrying the mesh's events.
#[utoipa::path(get, path = "/ws", responses((status = 101, description = "WebSocket of events and alerts")))]
pub async fn ws_route(State(state): State<Arc<AppState>>, upgrade: WebSocketUpgrade) -> Response {
    let hub = Hub {
        events: Arc::clone(&state.events),
        store: Arc::clone(&state.store),
        metrics: Arc::clone(&state.metrics),
        state: Some(state),
        send_timeout: SEND_TIMEOUT,
    };
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| run_connection(socket, hub))
}

/// The event filters of a connection; empty sets match everything.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Filters {
    event_types: BTreeSet<String>,
    agents: BTreeSet<String>,
    paused: bool,
}

impl Filters {
    /// The filters as stored in a [`ConnectionRecord`] (unreadable parts match everything).
    pub(crate) fn from_json(stored: &Value) -> Self {
        Self {
            event_types: names(stored, "event_types").unwrap_or_default(),
            agents: names(stored, "agents").unwrap_or_default(),
            paused: stored["paused"].as_bool().unwrap_or(false),
        }
    }

    pub(crate) fn matches(&self, event: &Event) -> bool {
        !self.paused
            && (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && (self.agents.is_empty() || self.agents.contains(&event.agent))
    }

    fn to_json(&self) -> Value {
        json!({"event_types": self.event_types, "agents": self.agents, "paused": self.paused})
    }
}

/// Strings of `data[key]` when it is a string or an array of strings; `*` and `all` mean any.
fn names(data: &Value, key: &str) -> Result<BTreeSet<String>, String> {
    let values: Vec<&Value> = match data.get(key) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
    };
    let mut set = BTreeSet::new();
    for v in values {
        let s = v
            .as_str()
            .ok_or_else(|| format!("`data.{key}` must be a string or an array of strings"))?;
        if s != "*" && s != "all" {
            set.insert(s.to_string());
        }
    }
    Ok(set)
}

fn message(kind: &str, data: Value) -> String {
    json!({"type": kind, "data": data, "timestamp": crate::api::now_iso8601()}).to_string()
}

pub(crate) fn event_message(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_else(|_| "{}".into())
}

/// What the connection does after a client message.
pub(crate) enum Reply {
    Send(Vec<String>),
    Close,
}

/// Serves one connection until the client leaves, errs or stops reading.
pub async fn run_connection(mut socket: WebSocket, hub: Hub) {
    let connection_id = crate::store::new_result_id();
    let mut live = hub.events.subscribe();
    let mut filters = Filters::default();
    let mut last_sent: i64 = 0;
    hub.metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    save_connection(&hub, &connection_id, &filters).await;
    loop {
        let outgoing: Vec<String> = tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    match handle_client_message(&hub, &connection_id, text.as_str(), &mut filters, &mut last_sent).await {
                        Reply::Send(messages) => messages,
                        Reply::Close => break,
                    }
                }
                Some(Ok(Message::Binary(_))) => vec![message(
                    "error",
                    json!({"error": "messages must be JSON text", "field": "message"}),
                )],
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => vec![], // ping/pong frames: answered by the library
            },
            received = live.recv() => match received {
                Ok(event) if event.offset > last_sent => {
                    last_sent = event.offset;
                    if filters.matches(&event) { vec![event_message(&event)] } else { vec![] }
                }
                Ok(_) => vec![],
                Err(RecvError::Lagged(missed)) => {
                    hub.metrics.ws_lagged.fetch_add(1, Ordering::Relaxed);
                    vec![message(
                        "lagged",
                        json!({
                            "missed": missed,
                            "resume_from_offset": last_sent + 1,
                            "hint": "send subscribe with from_offset to replay what was missed",
                        }),
                    )]
                }
                Err(RecvError::Closed) => break,
            },
        };
        let mut failed = false;
        for text in outgoing {
            match tokio::time::timeout(hub.send_timeout, socket.send(Message::Text(text.into())))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => failed = true,
                Err(_) => {
                    hub.metrics.ws_dropped.fetch_add(1, Ordering::Relaxed);
                    failed = true;
                }
            }
            if failed {
                break;
            }
        }
        if failed {
            break;
        }
    }
    hub.metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
    let _ = off_thread(&hub.store, move |s| s.remove_connection(&connection_id)).await;
}

pub(crate) async fn save_connection(hub: &Hub, connection_id: &str, filters: &Filters) {
    let record = ConnectionRecord {
        connection_id: connection_id.to_string(),
        connected_at_ms: now_ms(),
        filters: filters.to_json(),
    };
    if let Err(e) = off_thread(&hub.store, move |s| s.put_connection(&record)).await {
        tracing::warn!(error = %e, "recording a WebSocket connection failed");
    }
}

/// Answers one client message (and updates the connection's filters and replay position).
pub(crate) async fn handle_client_message(
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
            if let Some(from) = source.get("from_offset") {
                let Some(from) = from.as_i64().filter(|f| *f >= 0) else {
                    return error("`data.from_offset` must be a whole number >= 0".into(), "data.from_offset");
                };
                match hub.events.replay(from, MAX_REPLAY).await {
                    Ok(events) => {
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
            let mut messages = vec![message(
                "subscription_confirmed",
                json!({"filters": filters.to_json(), "replayed": replayed.len(), "connection_id": connection_id}),
            )];
            messages.extend(replayed);
            Reply::Send(messages)
        }
        Some("unsubscribe") => {
            filters.paused = true;
            save_connection(hub, connection_id, filters).await;
            Reply::Send(vec![message("unsubscribed", json!({}))])
        }
        Some("request_agent_status") => match &hub.state {
            Some(state) => {
                let status = crate::metrics::agents_status(state).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{LocalEventStream, SUBSCRIBER_BUFFER};
    use crate::store::SqliteStore;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as ClientMessage;

    async fn serve_hub(hub: Hub) -> String {
        let app = axum::Router::new().route(
            "/ws",
            axum::routing::get(move |upgrade: WebSocketUpgrade| {
                let hub = hub.clone();
                async move { upgrade.on_upgrade(move |socket| run_connection(socket, hub)) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("ws://{addr}/ws")
    }

    fn hub(send_timeout: Duration) -> Hub {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        Hub {
            events: Arc::new(LocalEventStream::new(store.clone())),
            store,
            metrics: Arc::new(Metrics::default()),
            state: None,
            send_timeout,
        }
    }

    async fn next_json<S>(client: &mut S) -> Value
    where
        S: StreamExt<Item = Result<ClientMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        loop {
            match client.next().await.unwrap().unwrap() {
                ClientMessage::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                _ => continue,
            }
        }
    }

    #[tokio::test]
    async fn ping_subscribe_filter_replay_and_errors() {
        let hub = hub(SEND_TIMEOUT);
        let url = serve_hub(hub.clone()).await;
        // Two results before the client connects: replayable.
        hub.events
            .publish_result("compliance", "r1", &json!({"x": 1}))
            .await
            .unwrap();
        hub.events
            .publish_result("threat-intelligence", "r2", &json!({"severity": "HIGH"}))
            .await
            .unwrap();
        let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        client
            .send(ClientMessage::Text(
                r#"{"type":"ping","data":{"n":7}}"#.into(),
            ))
            .await
            .unwrap();
        let pong = next_json(&mut client).await;
        assert_eq!(
            (pong["type"].as_str(), &pong["data"]["n"]),
            (Some("pong"), &json!(7))
        );

        client
            .send(ClientMessage::Text(
                r#"{"type":"subscribe","data":{"event_type":"alert","from_offset":1}}"#.into(),
            ))
            .await
            .unwrap();
        let confirmed = next_json(&mut client).await;
        assert_eq!(confirmed["type"], "subscription_confirmed");
        assert_eq!(confirmed["data"]["replayed"], 1);
        let replayed = next_json(&mut client).await;
        assert_eq!(
            (replayed["type"].as_str(), replayed["offset"].as_i64()),
            (Some("alert"), Some(3))
        );

        // Live: the agent_result is filtered out, the alert comes through.
        hub.events
            .publish_result(
                "client-health",
                "r3",
                &json!({"risk_level": "Critical", "client_id": "c1"}),
            )
            .await
            .unwrap();
        let alert = next_json(&mut client).await;
        assert_eq!(alert["type"], "alert");
        assert_eq!(alert["result_id"], "r3");
        assert_eq!(alert["data"]["severity"], "CRITICAL");

        for (bad, field) in [
            ("not json", "message"),
            (r#"{"type":"dance"}"#, "type"),
            (r#"{"type":"subscribe","data":{"agents":[1]}}"#, "data"),
            (r#"{"type":"request_agent_status"}"#, "type"),
        ] {
            client.send(ClientMessage::Text(bad.into())).await.unwrap();
            let reply = next_json(&mut client).await;
            assert_eq!(reply["type"], "error", "{bad}");
            assert_eq!(reply["data"]["field"], field, "{bad}");
        }
        assert_eq!(hub.store.list_connections().unwrap().len(), 1);
        client.close(None).await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_neither_slows_nor_blocks_the_others() {
        let hub = hub(Duration::from_millis(300));
        let url = serve_hub(hub.clone()).await;
        let (mut stalled, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let (mut reader, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // Make sure both connections are subscribed before publishing.
        for c in [&mut stalled, &mut reader] {
            c.send(ClientMessage::Text(r#"{"type":"ping"}"#.into()))
                .await
                .unwrap();
            assert_eq!(next_json(c).await["type"], "pong");
        }
        let total = 3 * SUBSCRIBER_BUFFER as i64;
        let payload = json!({"padding": "x".repeat(16 * 1024)});
        let events = Arc::clone(&hub.events);
        let publisher = tokio::spawn(async move {
            for i in 0..total {
                events
                    .publish_result("compliance", &format!("r{i}"), &payload)
                    .await
                    .unwrap();
            }
        });
        let started = std::time::Instant::now();
        let mut offsets = vec![];
        while offsets.len() < total as usize {
            let m = next_json(&mut reader).await;
            assert_eq!(
                m["type"], "agent_result",
                "the reading client never lags here"
            );
            offsets.push(m["offset"].as_i64().unwrap());
        }
        publisher.await.unwrap();
        assert_eq!(offsets, (1..=total).collect::<Vec<_>>());
        assert!(started.elapsed() < Duration::from_secs(60));
        // The stalled client was either dropped or told it lagged.
        let mut outcome = "none";
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stalled.next()).await {
                Ok(Some(Ok(ClientMessage::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "lagged" {
                        outcome = "lagged";
                        break;
                    }
                }
                Ok(Some(Ok(ClientMessage::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                    outcome = "dropped";
                    break;
                }
                Ok(Some(Ok(_))) => {}
                Err(_) => break,
            }
        }
        assert_ne!(outcome, "none");
        let dropped = hub.metrics.ws_dropped.load(Ordering::Relaxed);
        let lagged = hub.metrics.ws_lagged.load(Ordering::Relaxed);
        assert!(dropped + lagged >= 1, "dropped {dropped}, lagged {lagged}");
    }
}
