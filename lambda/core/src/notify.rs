//! HIGH and CRITICAL threats as Amazon EventBridge events (`--event-bus` / `MESH_EVENT_BUS`),
//! for rules to route: the deployment template sends them to the `msp-intelligence-alerts`
//! SNS topic. Off unless a bus is named.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use mesh_agents::ThreatFacts;
use serde_json::{json, Value};

use crate::store::ThreatEvent;

/// `source` of every event the mesh puts.
pub const EVENT_SOURCE: &str = "msp.intelligence.mesh";
/// `detail-type` of a threat event.
pub const THREAT_DETAIL_TYPE: &str = "ThreatDetected";
/// Severities that are sent.
pub const NOTIFIED_SEVERITIES: [&str; 2] = crate::alerts::ALERTING_SEVERITIES;

/// Puts threat events on one event bus.
pub struct ThreatNotifier {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl ThreatNotifier {
    /// A notifier for `bus` (a name or ARN; `default` is the account's default bus).
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

    /// Sends one threat; an error names what EventBridge said.
    pub async fn notify(&self, threat: &ThreatEvent, facts: &ThreatFacts) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(THREAT_DETAIL_TYPE)
            .detail(Self::detail(threat, facts).to_string())
            .resources(format!("result:{}", threat.threat_id))
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
