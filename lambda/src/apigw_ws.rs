//! The API Gateway WebSocket API (`MESH_MODE=websocket` in `bootstrap`): `$connect` stores
//! the connection in the connections table, `$disconnect` removes it, `$default` answers the
//! same client messages as `GET /ws` (ping, subscribe with filters and replay, unsubscribe,
//! request_agent_status, close) through the management API's `PostToConnection`. Any function
//! given the management endpoint (`--websocket-endpoint` / `MESH_WEBSOCKET_ENDPOINT`) pushes
//! the events it publishes to every connection whose filters match ([`WebSocketBroadcaster`]),
//! and forgets connections the API says are gone (410).

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use serde_json::{json, Value};

use crate::events::EventSink;
use crate::store::{off_thread, ConnectionRecord, Event, StateStore};
use crate::ws::{event_message, handle_client_message, save_connection, Filters, Hub, Reply};
use crate::AppState;

/// Why a message did not reach a connection.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The client has disconnected (HTTP 410 `GoneException`).
    #[error("the connection is gone")]
    Gone,
    #[error("PostToConnection failed: {0}")]
    Failed(String),
}

/// The WebSocket API's management endpoint (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
pub struct ConnectionsApi {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ConnectionsApi {
    /// A client of the management API at `endpoint`, with `config`'s region and credentials.
    pub fn new(config: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint.trim_end_matches('/'))
            .build();
        Self {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }

    /// Sends one text message to one connection.
    pub async fn post(&self, connection_id: &str, text: &str) -> Result<(), PostError> {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(text.as_bytes()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                Err(PostError::Gone)
            }
            Err(e) => Err(PostError::Failed(
                aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }

    /// Closes one connection.
    pub async fn close(&self, connection_id: &str) -> Result<(), PostError> {
        match self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                Err(PostError::Gone)
            }
            Err(e) => Err(PostError::Failed(
                aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }
}

/// The Lambda proxy answer to a WebSocket route.
fn route_answer(status: u16, body: Value) -> Value {
    json!({"statusCode": status, "body": body.to_string()})
}

/// Handles one WebSocket API event (`$connect`, `$disconnect`, `$default` or another route
/// key, answered like `$default`).
pub async fn handle_event(
    state: &Arc<AppState>,
    api: &ConnectionsApi,
    event: ApiGatewayWebsocketProxyRequest,
) -> Value {
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.clone() else {
        return route_answer(
            400,
            json!({"error": "the event has no requestContext.connectionId", "field": "requestContext.connectionId"}),
        );
    };
    let hub = Hub {
        events: Arc::clone(&state.events),
        store: Arc::clone(&state.store),
        metrics: Arc::clone(&state.metrics),
        state: Some(Arc::clone(state)),
        send_timeout: crate::ws::SEND_TIMEOUT,
    };
    match context.route_key.as_deref() {
        Some("$connect") => {
            save_connection(&hub, &connection_id, &Filters::default()).await;
            route_answer(200, json!({"connected": connection_id}))
        }
        Some("$disconnect") => {
            let id = connection_id.clone();
            if let Err(e) = off_thread(&hub.store, move |s| s.remove_connection(&id)).await {
                tracing::warn!(error = %e, "forgetting a WebSocket connection failed");
            }
            route_answer(200, json!({"disconnected": connection_id}))
        }
        _ => {
            let id = connection_id.clone();
            let stored = off_thread(&hub.store, move |s| {
                Ok(s.list_connections()?
                    .into_iter()
                    .find(|c| c.connection_id == id))
            })
            .await;
            let mut filters = match stored {
                Ok(Some(record)) => Filters::from_json(&record.filters),
                _ => Filters::default(),
            };
            // Replayed events are sent whatever their offset: a gateway connection has no
            // live feed in this process to deduplicate against.
            let mut last_sent = 0;
            let body = event.body.as_deref().unwrap_or("");
            match handle_client_message(&hub, &connection_id, body, &mut filters, &mut last_sent)
                .await
            {
                Reply::Send(messages) => {
                    for message in messages {
                        if let Err(e) = api.post(&connection_id, &message).await {
                            return route_answer(500, json!({"error": e.to_string()}));
                        }
                    }
                }
                Reply::Close => {
                    let _ = api.close(&connection_id).await;
                    let id = connection_id.clone();
                    let _ = off_thread(&hub.store, move |s| s.remove_connection(&id)).await;
                }
            }
            route_answer(200, json!({"handled": true}))
        }
    }
}

/// Pushes published events to the WebSocket API's connections whose filters match.
pub struct WebSocketBroadcaster {
    api: Arc<ConnectionsApi>,
    store: Arc<dyn StateStore>,
}

impl WebSocketBroadcaster {
    pub fn new(api: Arc<ConnectionsApi>, store: Arc<dyn StateStore>) -> Self {
        Self { api, store }
    }

    /// Sends `events` that match to one connection, in order.
    async fn send_to(
        &self,
        connection: &ConnectionRecord,
        events: &[Event],
    ) -> Result<(), PostError> {
        let filters = Filters::from_json(&connection.filters);
        for event in events.iter().filter(|e| filters.matches(e)) {
            self.api
                .post(&connection.connection_id, &event_message(event))
                .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventSink for WebSocketBroadcaster {
    fn name(&self) -> &'static str {
        "websocket-api"
    }

    async fn deliver(&self, events: &[Event]) -> Result<(), String> {
        let connections = off_thread(&self.store, |s| s.list_connections())
            .await
            .map_err(|e| e.to_string())?;
        let outcomes =
            futures_util::future::join_all(connections.iter().map(|c| self.send_to(c, events)))
                .await;
        let mut failures = vec![];
        for (connection, outcome) in connections.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                Err(PostError::Gone) => {
                    let id = connection.connection_id.clone();
                    if let Err(e) = off_thread(&self.store, move |s| s.remove_connection(&id)).await
                    {
                        failures.push(format!("forgetting gone connection: {e}"));
                    }
                }
                Err(PostError::Failed(e)) => {
                    failures.push(format!("{}: {e}", connection.connection_id))
                }
            }
        }
        match failures.is_empty() {
            true => Ok(()),
            false => Err(failures.join("; ")),
        }
    }
}
