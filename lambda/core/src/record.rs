//! Recording a result: the answer stored under its `result_id` with the threat and network
//! metrics it reports and its event and alerts, in one transaction; then the events go to the
//! live subscribers and the sinks. One operation, one error type.

use std::sync::atomic::Ordering::Relaxed;

use mesh_agents::{AgentKind, Facts};
use serde_json::Value;

use crate::agents::AgentAnswer;
use crate::error::MeshError;
use crate::history::Counted;
use crate::mesh::Mesh;
use crate::store::{iso8601_ms, new_result_id, NetworkMetric, ResultRows, ThreatEvent};

impl Mesh {
    /// Stores one answer under a new `result_id` (added to the answer) with what it says about
    /// threats and the network, and publishes its event and alerts. Returns the stored answer
    /// only after every write is durable, so an acknowledged result is never lost.
    pub async fn record(&self, answer: AgentAnswer) -> Result<Value, MeshError> {
        self.record_as(answer, new_result_id()).await
    }

    /// [`Mesh::record`] under a given `result_id` (an async job's id). Also beats this
    /// process's heartbeat ([`Mesh::heartbeat`]).
    pub async fn record_as(
        &self,
        answer: AgentAnswer,
        result_id: String,
    ) -> Result<Value, MeshError> {
        let AgentAnswer {
            kind,
            model_used,
            facts,
            body: mut data,
        } = answer;
        let agent = kind.cli_name();
        if let Value::Object(fields) = &mut data {
            fields.insert("result_id".into(), Value::String(result_id.clone()));
        }
        let mut rows = ResultRows::new(agent, &result_id, &model_used, data);
        let timestamp_ms = rows.result.timestamp_ms;
        rows.threat = (kind == AgentKind::ThreatIntelligence)
            .then(|| threat_event(&result_id, timestamp_ms, &model_used, &facts))
            .flatten();
        rows.network = network_metrics(&result_id, timestamp_ms, &facts);
        let (threat, data) = (rows.threat.clone(), rows.result.data.clone());
        // The result, its threat and network rows and its events: one transaction.
        let alerts = crate::alerts::alerts_for(&facts, &model_used);
        let published = self.events.publish_result(rows, alerts).await?;
        self.metrics
            .events_published
            .fetch_add(published.len() as u64, Relaxed);
        let alerts = published
            .iter()
            .filter(|e| e.event_type == crate::events::ALERT)
            .count();
        if alerts > 0 {
            self.metrics
                .history
                .add(kind, Counted::Alert, alerts as u32, timestamp_ms);
        }
        if let (Some(notifier), Some(threat), Some(threat_facts)) =
            (&self.threat_notifier, &threat, &facts.threat)
        {
            if crate::notify::ThreatNotifier::wants(threat) {
                // The threat is stored already: a failed notification is logged and counted,
                // and the caller still gets the answer.
                let counter = match notifier.notify(threat, threat_facts).await {
                    Ok(()) => &self.metrics.threat_notifications,
                    Err(e) => {
                        tracing::warn!(threat_id = %threat.threat_id, error = %e, "EventBridge notification failed");
                        &self.metrics.threat_notification_failures
                    }
                };
                counter.fetch_add(1, Relaxed);
            }
        }
        crate::events::deliver_to_sinks(&self.event_sinks, &published, &self.metrics).await;
        self.heartbeat();
        Ok(data)
    }
}

/// The stored threat of a threat-intelligence answer.
fn threat_event(
    result_id: &str,
    timestamp_ms: i64,
    model_used: &str,
    facts: &Facts,
) -> Option<ThreatEvent> {
    let threat = facts.threat.as_ref()?;
    Some(ThreatEvent {
        threat_id: result_id.to_string(),
        timestamp_ms,
        timestamp: iso8601_ms(timestamp_ms),
        severity: threat.severity.clone(),
        threat_type: threat.threat_type.clone(),
        confidence: threat.confidence,
        model_used: model_used.to_string(),
    })
}

/// The network-intelligence rows of an answer's metrics.
fn network_metrics(result_id: &str, timestamp_ms: i64, facts: &Facts) -> Vec<NetworkMetric> {
    facts
        .network
        .iter()
        .map(|f| NetworkMetric {
            msp_id: f.msp_id.clone(),
            metric_type: f.metric_type.to_string(),
            value: f.value,
            timestamp_ms,
            source: result_id.to_string(),
        })
        .collect()
}
