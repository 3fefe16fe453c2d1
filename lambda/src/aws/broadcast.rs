//! The broadcaster (`bootstrap` with `MESH_MODE=broadcast`): fed by the DynamoDB stream of the
//! event log table, it takes event delivery off the request path. An agent function stores its
//! result and events and answers; this function receives the new event items from the stream
//! and delivers them to the sinks of its services: the WebSocket API's connections whose
//! filters match (the stored connections read once per
//! [`mesh_core::connections::CONNECTIONS_TTL`], not per event) and the Kinesis stream, and puts
//! each HIGH or CRITICAL threat alert on EventBridge (`MESH_EVENT_BUS`). It loads no model.

use mesh_core::events::deliver_to_sinks;
use mesh_core::mesh::Services;
use mesh_core::metrics::Metrics;
use mesh_core::store::dynamo::events_from_stream;
use serde_json::{json, Value};

/// Delivers the events of one stream batch. A record that is not a readable event is logged
/// and skipped (retrying it would only block the shard); a failed delivery is logged and
/// counted by [`deliver_to_sinks`], the event being in the log already. Answers the partial
/// batch response, which never asks for a retry.
pub async fn handle_stream_batch(services: &Services, metrics: &Metrics, batch: Value) -> Value {
    let mut events = Vec::new();
    for parsed in events_from_stream(&batch) {
        match parsed {
            Ok(event) => events.push(event),
            Err(e) => tracing::warn!(error = %e, "stream record skipped"),
        }
    }
    deliver_to_sinks(&services.event_sinks, &events, metrics).await;
    if let Some(notifier) = &services.threat_notifier {
        for event in &events {
            // The alert is in the log already: a failed notification is logged and counted.
            let counter = match notifier.notify_alert(event).await {
                Ok(false) => continue,
                Ok(true) => &metrics.threat_notifications,
                Err(e) => {
                    tracing::warn!(result_id = %event.result_id, error = %e, "EventBridge notification failed");
                    &metrics.threat_notification_failures
                }
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    tracing::info!(events = events.len(), "events broadcast");
    json!({ "batchItemFailures": [] })
}
