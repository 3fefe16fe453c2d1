//! The API Gateway WebSocket API (`MESH_MODE=websocket` in `bootstrap`): `$connect` stores
//! the connection in the connections table, `$disconnect` removes it, `$default` answers the
//! same client messages as `GET /ws` ([`mesh_core::subscriptions`]) through the management
//! API's `PostToConnection`. Any function given the management endpoint pushes the events it
//! publishes to the connections ([`mesh_core::connections::WebSocketBroadcaster`]).

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use mesh_core::connections::ConnectionsApi;
use mesh_core::filters::Filters;
use mesh_core::store::off_thread;
use mesh_core::subscriptions::{handle_client_message, save_connection, Hub, Reply};
use mesh_core::Mesh;
use serde_json::{json, Value};

/// The Lambda proxy answer to a WebSocket route.
fn route_answer(status: u16, body: Value) -> Value {
    json!({"statusCode": status, "body": body.to_string()})
}

/// Handles one WebSocket API event (`$connect`, `$disconnect`, `$default` or another route
/// key, answered like `$default`).
pub async fn handle_event(
    state: &Arc<Mesh>,
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
        mesh: Some(Arc::clone(state)),
        send_timeout: mesh_core::subscriptions::SEND_TIMEOUT,
        max_replay: mesh_core::subscriptions::MAX_REPLAY,
        background_writes: None,
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
            let stored = off_thread(&hub.store, move |s| s.get_connection(&id)).await;
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
