//! The alert rules: a threat of severity HIGH or CRITICAL, a client of risk level High or
//! Critical. Each alert names its rule, the level that fired it and the facts behind it, all
//! read from the answer's typed [`Facts`].

use mesh_agents::Facts;
use serde_json::{json, Value};

/// Threat severities that raise an alert (and an EventBridge notification).
pub const ALERTING_SEVERITIES: [&str; 2] = ["HIGH", "CRITICAL"];
/// Client risk levels that raise an alert.
pub const ALERTING_RISK_LEVELS: [&str; 2] = ["High", "Critical"];

/// The rule of a HIGH or CRITICAL threat's alert.
pub const THREAT_RULE: &str = "threat_severity_high_or_critical";

/// The alerts an answer of `model_used` with these facts raises (each an `alert` event's data).
/// A threat's alert carries its facts, indicators and actions included: the broadcaster sends
/// EventBridge's `ThreatDetected` from it.
pub fn alerts_for(facts: &Facts, model_used: &str) -> Vec<Value> {
    let mut alerts = vec![];
    if let Some(threat) = &facts.threat {
        if ALERTING_SEVERITIES.contains(&threat.severity.as_str()) {
            alerts.push(json!({
                "rule": THREAT_RULE,
                "severity": threat.severity,
                "threat_type": threat.threat_type,
                "confidence": threat.confidence,
                "indicators": threat.indicators,
                "recommended_actions": threat.recommended_actions,
                "model_used": model_used,
                "message": format!("{} threat: {}", threat.severity, threat.threat_type),
            }));
        }
    }
    if let Some(risk) = &facts.client_risk {
        if ALERTING_RISK_LEVELS.contains(&risk.risk_level.as_str()) {
            alerts.push(json!({
                "rule": "client_risk_high_or_critical",
                "severity": risk.risk_level.to_ascii_uppercase(),
                "client_id": risk.client_id,
                "churn_risk": risk.churn_risk,
                "model_used": model_used,
                "message": format!(
                    "{} churn risk for client {}",
                    risk.risk_level,
                    risk.client_id.as_deref().unwrap_or("(unnamed)")
                ),
            }));
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_agents::{ClientRiskFacts, ThreatFacts};

    fn threat(severity: &str) -> Facts {
        Facts {
            threat: Some(ThreatFacts {
                severity: severity.into(),
                threat_type: "ransomware".into(),
                confidence: 0.9,
                indicators: Value::Null,
                recommended_actions: vec![],
            }),
            ..Default::default()
        }
    }

    fn client(level: &str) -> Facts {
        Facts {
            client_risk: Some(ClientRiskFacts {
                risk_level: level.into(),
                client_id: Some("c-9".into()),
                churn_risk: 0.7,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn rules_fire_on_high_and_critical_only() {
        for (severity, fires) in [
            ("LOW", false),
            ("MEDIUM", false),
            ("HIGH", true),
            ("CRITICAL", true),
        ] {
            let alerts = alerts_for(&threat(severity), "m@1");
            assert_eq!(alerts.len(), usize::from(fires), "{severity}");
        }
        for (level, fires) in [
            ("Low", false),
            ("Medium", false),
            ("High", true),
            ("Critical", true),
        ] {
            let alerts = alerts_for(&client(level), "m@1");
            assert_eq!(alerts.len(), usize::from(fires), "{level}");
        }
        assert!(alerts_for(&Facts::default(), "m@1").is_empty());
        let alert = &alerts_for(&client("Critical"), "churn@2")[0];
        assert_eq!(alert["severity"], "CRITICAL");
        assert_eq!(alert["client_id"], "c-9");
        assert_eq!(alert["model_used"], "churn@2");
        assert_eq!(alert["message"], "Critical churn risk for client c-9");
    }
}
