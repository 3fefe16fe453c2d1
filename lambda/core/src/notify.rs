//! HIGH and CRITICAL threats as Amazon EventBridge events (`--event-bus` / `MESH_EVENT_BUS`),
//! for rules to route: the deployment template sends them to the `msp-intelligence-alerts`
//! SNS topic. Off unless a bus is named. A server sends them as it records an answer
//! ([`ThreatNotifier::notify`]); on AWS the broadcaster sends them from the threat alerts of
//! the event log's stream ([`ThreatNotifier::notify_alert`]), off the request path, with the
//! same `detail`.

#[cfg(feature = "aws")]
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use mesh_agents::ThreatFacts;
use serde_json::{json, Value};

use crate::store::{Event, ThreatEvent};

/// `source` of every event the mesh puts.
pub const EVENT_SOURCE: &str = "msp.intelligence.mesh";
/// `detail-type` of a threat event.
pub const THREAT_DETAIL_TYPE: &str = "ThreatDetected";
/// Severities that are sent.
pub const NOTIFIED_SEVERITIES: [&str; 2] = crate::alerts::ALERTING_SEVERITIES;

#[cfg(feature = "aws")]
type Client = aws_sdk_eventbridge::Client;
#[cfg(not(feature = "aws"))]
type Client = crate::NoSdk;

/// Puts threat events on one event bus.
pub struct ThreatNotifier {
    client: Client,
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    bus: String,
}

impl ThreatNotifier {
    /// A notifier for `bus` (a name or ARN; `default` is the account's default bus).
    #[cfg(feature = "aws")]
    pub fn new(config: &aws_config::SdkConfig, bus: String) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(config),
            bus,
        }
    }

    /// Whether `threat` is severe enough to send.
    pub fn wants(threat: &ThreatEvent) -> bool {
        NOTIFIED_SEVERITIES.contains(&threat.severity.as_str())
    }

    /// The event's `detail`: the stored threat plus the answer's indicators and actions.
    pub fn detail(threat: &ThreatEvent, facts: &ThreatFacts) -> Value {
        json!({
            "threat_id": threat.threat_id,
            "result_id": threat.threat_id,
            "severity": threat.severity,
            "threat_type": threat.threat_type,
            "confidence": threat.confidence,
            "model_used": threat.model_used,
            "timestamp": threat.timestamp,
            "indicators": facts.indicators,
            "recommended_actions": facts.recommended_actions,
        })
    }

    /// The `detail` of a threat alert event (`threat_severity_high_or_critical`, which carries
    /// the threat's facts): the same as [`Self::detail`] of the threat it was raised on. `None`
    /// for any other event.
    pub fn detail_of_alert(event: &Event) -> Option<Value> {
        let data = &event.data;
        if event.event_type != crate::events::ALERT
            || data["rule"] != crate::alerts::THREAT_RULE
            || !NOTIFIED_SEVERITIES.contains(&data["severity"].as_str()?)
        {
            return None;
        }
        Some(json!({
            "threat_id": event.result_id,
            "result_id": event.result_id,
            "severity": data["severity"],
            "threat_type": data["threat_type"],
            "confidence": data["confidence"],
            "model_used": data["model_used"],
            "timestamp": event.timestamp,
            "indicators": data["indicators"],
            "recommended_actions": data["recommended_actions"],
        }))
    }

    /// Sends the threat of one alert event ([`Self::detail_of_alert`]); `Ok(false)` when the
    /// event is not a threat alert.
    pub async fn notify_alert(&self, event: &Event) -> Result<bool, String> {
        match Self::detail_of_alert(event) {
            Some(detail) => self.put(&event.result_id, &detail).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Sends one threat; an error names what EventBridge said.
    pub async fn notify(&self, threat: &ThreatEvent, facts: &ThreatFacts) -> Result<(), String> {
        self.put(&threat.threat_id, &Self::detail(threat, facts))
            .await
    }

    #[cfg(not(feature = "aws"))]
    async fn put(&self, _: &str, _: &Value) -> Result<(), String> {
        match self.client {}
    }

    /// Puts one `ThreatDetected` event with `detail` for result `result_id`.
    #[cfg(feature = "aws")]
    async fn put(&self, result_id: &str, detail: &Value) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(THREAT_DETAIL_TYPE)
            .detail(detail.to_string())
            .resources(format!("result:{result_id}"))
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        match output.entries().first() {
            Some(e) if e.error_code().is_some() => Err(format!(
                "{}: {}",
                e.error_code().unwrap_or_default(),
                e.error_message().unwrap_or_default()
            )),
            _ if output.failed_entry_count() > 0 => Err("EventBridge refused the event".into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broadcaster's `detail`, built from the alert event, is the one the server sends
    /// from the stored threat and its facts.
    #[test]
    fn an_alert_gives_the_same_detail_as_the_threat() {
        let facts = ThreatFacts {
            severity: "CRITICAL".into(),
            threat_type: "ransomware".into(),
            confidence: 0.875,
            indicators: json!({"ips": ["185.220.101.47"]}),
            recommended_actions: vec!["Isolate FS01".into()],
        };
        let threat = ThreatEvent {
            threat_id: "r-1".into(),
            timestamp_ms: 1_000,
            timestamp: crate::store::iso8601_ms(1_000),
            severity: facts.severity.clone(),
            threat_type: facts.threat_type.clone(),
            confidence: facts.confidence,
            model_used: "threat-category-minilm@3".into(),
        };
        let mesh_facts = mesh_agents::Facts {
            threat: Some(facts.clone()),
            ..Default::default()
        };
        let alert = crate::alerts::alerts_for(&mesh_facts, &threat.model_used).remove(0);
        let event = Event {
            offset: 2,
            event_type: crate::events::ALERT.into(),
            agent: "threat-intelligence".into(),
            result_id: "r-1".into(),
            data: alert,
            timestamp: threat.timestamp.clone(),
        };
        assert_eq!(
            ThreatNotifier::detail_of_alert(&event),
            Some(ThreatNotifier::detail(&threat, &facts))
        );
        let mut other = event.clone();
        other.event_type = crate::events::AGENT_RESULT.into();
        assert_eq!(ThreatNotifier::detail_of_alert(&other), None);
    }
}
