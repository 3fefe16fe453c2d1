//! `GET /ws`: live events over a WebSocket.
//!
//! Client messages follow the subscription protocol of [`mesh_core::subscriptions`]. The server
//! sends every event (`{type, data, timestamp, offset, agent, result_id}`) that matches the
//! connection's filters, in offset order; with no `subscribe`, every event. A client that
//! falls more than [`mesh_core::events::SUBSCRIBER_BUFFER`] events behind gets a `lagged`
//! message saying how many it missed and where to replay from; one that does not read for
//! [`SEND_TIMEOUT`] is dropped. Neither slows the other connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use mesh_core::filters::{event_message, message, Filters};
use mesh_core::store::off_thread;
use mesh_core::subscriptions::{
    handle_client_message, store_connection, Hub, Reply, MAX_REPLAY, SEND_TIMEOUT,
};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Largest message a client may send.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages a client may send per second, sustained; more are answered with an error and
/// not handled.
pub const CLIENT_MESSAGES_PER_SECOND: u32 = 20;
/// Messages a client may send at once above the sustained rate.
pub const CLIENT_MESSAGE_BURST: u32 = 40;

/// Upgrades to a WebSocket carrying the mesh's events; past `--max-ws-connections` open ones,
/// 429 with `retry-after`.
#[utoipa::path(get, path = "/ws", responses((status = 101, description = "WebSocket of events and alerts"), (status = 429, description = "too many connections")))]
pub async fn ws_route(State(state): State<Arc<AppState>>, upgrade: WebSocketUpgrade) -> Response {
    let Ok(slot) = Arc::clone(&state.protection.ws_slots).try_acquire_owned() else {
        state.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
        return ApiError::Overloaded(format!(
            "{} WebSocket connections are open, the most this server keeps (--max-ws-connections); retry shortly",
            state.protection.max_ws_connections
        ))
        .into_response();
    };
    let hub = Hub {
        events: Arc::clone(&state.events),
        store: Arc::clone(&state.store),
        metrics: Arc::clone(&state.metrics),
        mesh: Some(Arc::clone(&state.mesh)),
        send_timeout: SEND_TIMEOUT,
        max_replay: MAX_REPLAY,
        background_writes: None,
    };
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            run_connection(socket, hub).await;
            drop(slot);
        })
}

/// One connection's message limiter: [`CLIENT_MESSAGES_PER_SECOND`], burst
/// [`CLIENT_MESSAGE_BURST`] (governor's GCRA, as the HTTP rate limit).
fn message_rate() -> governor::DefaultDirectRateLimiter {
    let rate = std::num::NonZeroU32::new(CLIENT_MESSAGES_PER_SECOND).expect("non-zero rate");
    let burst = std::num::NonZeroU32::new(CLIENT_MESSAGE_BURST).expect("non-zero burst");
    governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst))
}

/// Serves one connection until the client leaves, errs or stops reading. Its record (with
/// the filters) is written by a task of its own, so no message waits for the store.
pub async fn run_connection(mut socket: WebSocket, mut hub: Hub) {
    let connection_id = mesh_core::store::new_result_id();
    let mut live = hub.events.subscribe();
    let mut filters = Filters::default();
    let mut last_sent: i64 = 0;
    let rate = message_rate();
    hub.metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    let (writes, mut latest) = tokio::sync::watch::channel(filters.clone());
    let writer = {
        let (store, id) = (Arc::clone(&hub.store), connection_id.clone());
        tokio::spawn(async move {
            loop {
                let filters = latest.borrow_and_update().clone();
                store_connection(&store, &id, &filters).await;
                if latest.changed().await.is_err() {
                    break;
                }
            }
        })
    };
    hub.background_writes = Some(writes);
    loop {
        let outgoing: Vec<String> = tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(_))) if rate.check().is_err() => vec![message(
                    "error",
                    json!({
                        "error": format!("more than {CLIENT_MESSAGES_PER_SECOND} messages a second; this one was not handled"),
                        "field": "message",
                    }),
                )],
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
    // The last filter write lands before the record is removed.
    hub.background_writes = None;
    let _ = writer.await;
    let _ = off_thread(&hub.store, move |s| s.remove_connection(&connection_id)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use mesh_core::events::{LocalEventStream, SUBSCRIBER_BUFFER};
    use mesh_core::metrics::Metrics;
    use mesh_core::store::{ResultRows, SqliteStore};
    use serde_json::Value;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message as ClientMessage;

    /// The rows of an answer `data` of `agent` stored under `result_id`.
    fn rows(agent: &str, result_id: &str, data: Value) -> ResultRows {
        ResultRows::new(agent, result_id, "test-model@1", data)
    }

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
            mesh: None,
            send_timeout,
            max_replay: MAX_REPLAY,
            background_writes: None,
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

    /// A replay longer than its bound says so, and where to continue; subscribing from there
    /// gets the rest.
    #[tokio::test]
    async fn a_replay_past_its_bound_is_marked_truncated_with_where_to_continue() {
        let hub = Hub {
            max_replay: 2,
            ..hub(SEND_TIMEOUT)
        };
        let url = serve_hub(hub.clone()).await;
        for i in 0..5 {
            hub.events
                .publish_result(
                    rows("compliance", &format!("r{i}"), json!({"i": i})),
                    vec![],
                )
                .await
                .unwrap();
        }
        let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let subscribe = |from: i64| {
            ClientMessage::Text(
                json!({"type": "subscribe", "data": {"from_offset": from}})
                    .to_string()
                    .into(),
            )
        };
        client.send(subscribe(1)).await.unwrap();
        let confirmed = next_json(&mut client).await;
        assert_eq!(confirmed["data"]["replayed"], 2, "{confirmed}");
        assert_eq!(confirmed["data"]["truncated"], true, "{confirmed}");
        assert_eq!(confirmed["data"]["continue_from_offset"], 3, "{confirmed}");
        for offset in [1, 2] {
            assert_eq!(next_json(&mut client).await["offset"], offset);
        }
        client.send(subscribe(5)).await.unwrap();
        let rest = next_json(&mut client).await;
        assert_eq!(rest["data"]["replayed"], 1, "{rest}");
        assert_eq!(rest["data"]["truncated"], false, "{rest}");
        assert!(rest["data"].get("continue_from_offset").is_none(), "{rest}");
    }

    #[tokio::test]
    async fn ping_subscribe_filter_replay_and_errors() {
        let hub = hub(SEND_TIMEOUT);
        let url = serve_hub(hub.clone()).await;
        // Two results before the client connects: replayable.
        hub.events
            .publish_result(rows("compliance", "r1", json!({"x": 1})), vec![])
            .await
            .unwrap();
        hub.events
            .publish_result(
                rows("threat-intelligence", "r2", json!({"severity": "HIGH"})),
                vec![json!({"rule": "threat_severity_high_or_critical", "severity": "HIGH"})],
            )
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
                rows(
                    "client-health",
                    "r3",
                    json!({"risk_level": "Critical", "client_id": "c1"}),
                ),
                vec![json!({"rule": "client_risk_high_or_critical", "severity": "CRITICAL"})],
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
                    .publish_result(
                        rows("compliance", &format!("r{i}"), payload.clone()),
                        vec![],
                    )
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
