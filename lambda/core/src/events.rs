//! The event stream: every agent result becomes an `agent_result` event, and the alerts the
//! rules ([`crate::alerts`]) raise on it `alert` events of their own. Events are persisted in an [`EventLog`]
//! (replayable from an offset) and then broadcast, in offset order, to live subscribers
//! (the WebSocket connections).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{broadcast, Mutex};

use crate::store::{
    now_ms, off_thread, AgentResult, Event, EventLog, NewEvent, ResultRows, StoreError,
};

/// Type of the event every agent result becomes.
pub const AGENT_RESULT: &str = "agent_result";
/// Type of the events the alert rules raise.
pub const ALERT: &str = "alert";

/// Largest answer an `agent_result` event carries whole, in bytes of JSON. A larger one (an
/// anomaly answer with 100,000 scores) is stored whole as the result, and its event carries
/// [`event_data`]'s summary instead: events travel in stream records and WebSocket frames,
/// which have limits of their own.
pub const MAX_EVENT_DATA_BYTES: usize = 64 * 1024;

/// What the `agent_result` event of answer `data` carries: the answer itself, or when its JSON
/// is over [`MAX_EVENT_DATA_BYTES`], its scalar fields (severity, counts, `model_used`, ...)
/// with `omitted` naming the size and where the whole answer is (`GET /results/{id}`).
pub fn event_data(result_id: &str, data: &Value) -> Value {
    let bytes = serde_json::to_vec(data).map_or(0, |b| b.len());
    if bytes <= MAX_EVENT_DATA_BYTES {
        return data.clone();
    }
    let mut summary = serde_json::Map::new();
    if let Value::Object(fields) = data {
        for (name, value) in fields {
            if !(value.is_array() || value.is_object()) {
                summary.insert(name.clone(), value.clone());
            }
        }
    }
    summary.insert(
        "omitted".into(),
        serde_json::json!({
            "reason": format!("the answer is {bytes} bytes; events carry at most {MAX_EVENT_DATA_BYTES}"),
            "bytes": bytes,
            "result": format!("/results/{result_id}"),
        }),
    );
    Value::Object(summary)
}

/// Events a live subscriber may fall behind by before it is told it lagged.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// Publishes events durably and in order, replays them, and feeds live subscribers.
#[async_trait::async_trait]
pub trait EventStream: Send + Sync + 'static {
    /// Stores one answer's rows with its `agent_result` event and the `alerts` it raised (in
    /// that order), all in one transaction ([`EventLog::record`]), then broadcasts the events;
    /// returns them with their offsets.
    async fn publish_result(
        &self,
        rows: ResultRows,
        alerts: Vec<Value>,
    ) -> Result<Vec<Event>, StoreError>;
    /// A live feed of every event published from now on.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// Persisted events with `offset >= from`, oldest first.
    async fn replay(&self, from: i64, limit: u32) -> Result<Vec<Event>, StoreError>;
    /// The newest `limit` persisted events, oldest first.
    async fn newest(&self, limit: u32) -> Result<Vec<Event>, StoreError>;
}

/// Another place published events go once they are in the log: the Kinesis stream
/// ([`crate::sinks::KinesisSink`]), API Gateway WebSocket connections
/// ([`crate::connections::WebSocketBroadcaster`]).
#[async_trait::async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Takes the events of one result, in offset order; an error says what failed.
    async fn deliver(&self, events: &[Event]) -> Result<(), String>;
}

/// Delivers `events` to every sink at once and waits for all of them. The events are durable
/// in the log already: a sink that fails is logged and counted, and the caller goes on.
pub async fn deliver_to_sinks(
    sinks: &[Arc<dyn EventSink>],
    events: &[Event],
    metrics: &crate::metrics::Metrics,
) {
    use std::sync::atomic::Ordering::Relaxed;
    if events.is_empty() {
        return;
    }
    let outcomes =
        futures_util::future::join_all(sinks.iter().map(|sink| sink.deliver(events))).await;
    for (sink, outcome) in sinks.iter().zip(outcomes) {
        match outcome {
            Ok(()) => metrics.event_sink_deliveries.fetch_add(1, Relaxed),
            Err(e) => {
                tracing::warn!(sink = sink.name(), first_offset = events[0].offset, error = %e, "event sink failed");
                metrics.event_sink_failures.fetch_add(1, Relaxed)
            }
        };
    }
}

/// The embedded event stream: a persisted log plus a broadcast channel.
pub struct LocalEventStream {
    log: Arc<dyn EventLog>,
    sender: broadcast::Sender<Event>,
    /// Held from append to broadcast, so subscribers see offsets in increasing order.
    publishing: Mutex<()>,
}

impl LocalEventStream {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        let (sender, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        Self {
            log,
            sender,
            publishing: Mutex::new(()),
        }
    }
}

#[async_trait::async_trait]
impl EventStream for LocalEventStream {
    async fn publish_result(
        &self,
        rows: ResultRows,
        alerts: Vec<Value>,
    ) -> Result<Vec<Event>, StoreError> {
        let timestamp_ms = now_ms();
        let AgentResult {
            agent,
            result_id,
            data,
            ..
        } = &rows.result;
        let mut events = vec![NewEvent {
            event_type: AGENT_RESULT.into(),
            agent: agent.clone(),
            result_id: result_id.clone(),
            data: event_data(result_id, data),
            timestamp_ms,
        }];
        events.extend(alerts.into_iter().map(|alert| NewEvent {
            event_type: ALERT.into(),
            agent: agent.clone(),
            result_id: result_id.clone(),
            data: alert,
            timestamp_ms,
        }));
        let _order = self.publishing.lock().await;
        let appended = off_thread(&self.log, move |log| log.record(&rows, &events)).await?;
        for event in &appended {
            // No subscriber is not an error.
            let _ = self.sender.send(event.clone());
        }
        Ok(appended)
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    async fn replay(&self, from: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        off_thread(&self.log, move |log| log.read_from(from, limit)).await
    }

    async fn newest(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        off_thread(&self.log, move |log| log.read_newest(limit)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use serde_json::json;

    #[tokio::test]
    async fn subscribers_get_results_then_alerts_in_offset_order_and_replay_matches() {
        let stream = LocalEventStream::new(Arc::new(SqliteStore::in_memory().unwrap()));
        let mut live = stream.subscribe();
        stream
            .publish_result(
                ResultRows::new("anomaly-detection", "r1", "m", json!({"anomalies": []})),
                vec![],
            )
            .await
            .unwrap();
        stream
            .publish_result(
                ResultRows::new(
                    "threat-intelligence",
                    "r2",
                    "m",
                    json!({"severity": "CRITICAL", "threat_type": "ransomware"}),
                ),
                vec![json!({"severity": "CRITICAL", "rule": "threat_severity_high_or_critical"})],
            )
            .await
            .unwrap();
        let mut received = vec![];
        for _ in 0..3 {
            received.push(live.recv().await.unwrap());
        }
        let summary: Vec<_> = received
            .iter()
            .map(|e| (e.offset, e.event_type.as_str(), e.result_id.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, AGENT_RESULT, "r1"),
                (2, AGENT_RESULT, "r2"),
                (3, ALERT, "r2")
            ]
        );
        assert_eq!(received[2].data["severity"], "CRITICAL");
        assert_eq!(stream.replay(2, 10).await.unwrap(), received[1..]);
    }

    /// A small answer travels whole; a large one as its scalar fields and where to get it.
    #[test]
    fn large_answers_travel_as_a_summary() {
        let small = serde_json::json!({"severity": "LOW", "anomalies": [1, 2]});
        assert_eq!(event_data("r1", &small), small);
        let scores: Vec<f64> = (0..20_000).map(f64::from).collect();
        let large = serde_json::json!({"anomalies_detected": 2, "model_used": "iforest@1",
            "anomaly_scores": scores, "statistics": {"mean": 1.0}});
        let summary = event_data("r2", &large);
        assert_eq!(summary["anomalies_detected"], 2);
        assert_eq!(summary["model_used"], "iforest@1");
        assert!(summary.get("anomaly_scores").is_none() && summary.get("statistics").is_none());
        assert_eq!(summary["omitted"]["result"], "/results/r2");
        assert!(summary["omitted"]["bytes"].as_u64().unwrap() > MAX_EVENT_DATA_BYTES as u64);
    }
}
