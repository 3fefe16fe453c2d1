//! The API Gateway WebSocket API's connections: the management API client
//! ([`ConnectionsApi`]: `PostToConnection`, `DeleteConnection`) and the event sink that pushes
//! published events to every stored connection whose filters match ([`WebSocketBroadcaster`]),
//! forgetting connections the API says are gone (410). The stored connections are read once
//! per [`CONNECTIONS_TTL`], not once per event.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(feature = "aws")]
use aws_sdk_apigatewaymanagement::primitives::Blob;

use crate::events::EventSink;
use crate::filters::{event_message, Filters};
use crate::store::{off_thread, ConnectionRecord, Event, StateStore};

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
    client: Client,
}

#[cfg(feature = "aws")]
type Client = aws_sdk_apigatewaymanagement::Client;
#[cfg(not(feature = "aws"))]
type Client = crate::NoSdk;

#[cfg(not(feature = "aws"))]
impl ConnectionsApi {
    /// Sends one text message to one connection.
    pub async fn post(&self, _: &str, _: &str) -> Result<(), PostError> {
        match self.client {}
    }

    /// Closes one connection.
    pub async fn close(&self, _: &str) -> Result<(), PostError> {
        match self.client {}
    }
}

#[cfg(feature = "aws")]
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

/// How long the broadcaster reuses the stored connections it read: a connection (or a
/// changed subscription) starts receiving events at most this long after it is stored.
pub const CONNECTIONS_TTL: Duration = Duration::from_secs(2);

/// Pushes published events to the WebSocket API's connections whose filters match.
pub struct WebSocketBroadcaster {
    api: Arc<ConnectionsApi>,
    store: Arc<dyn StateStore>,
    /// The stored connections as read last, and when.
    cached: Mutex<Option<(Instant, Arc<Vec<ConnectionRecord>>)>>,
}

impl WebSocketBroadcaster {
    pub fn new(api: Arc<ConnectionsApi>, store: Arc<dyn StateStore>) -> Self {
        Self {
            api,
            store,
            cached: Mutex::new(None),
        }
    }

    /// The stored connections, read again once [`CONNECTIONS_TTL`] has passed.
    async fn connections(&self) -> Result<Arc<Vec<ConnectionRecord>>, String> {
        if let Some((read, list)) = self.cached.lock().expect("cache").as_ref() {
            if read.elapsed() < CONNECTIONS_TTL {
                return Ok(list.clone());
            }
        }
        let list = Arc::new(
            off_thread(&self.store, |s| s.list_connections())
                .await
                .map_err(|e| e.to_string())?,
        );
        *self.cached.lock().expect("cache") = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// Drops a gone connection from the cached list.
    fn forget(&self, connection_id: &str) {
        if let Some((_, list)) = self.cached.lock().expect("cache").as_mut() {
            let kept: Vec<ConnectionRecord> = list
                .iter()
                .filter(|c| c.connection_id != connection_id)
                .cloned()
                .collect();
            *list = Arc::new(kept);
        }
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
        let connections = self.connections().await?;
        let outcomes =
            futures_util::future::join_all(connections.iter().map(|c| self.send_to(c, events)))
                .await;
        let mut failures = vec![];
        for (connection, outcome) in connections.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                Err(PostError::Gone) => {
                    self.forget(&connection.connection_id);
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
