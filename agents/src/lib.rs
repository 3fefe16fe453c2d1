//! The MSP agents: one module per agent, each a typed request in and a computed
//! response out, naming the model that produced it.
//!
//! Shared pieces: [`ioc`] (indicator extraction), [`text`] (sentences, e-mail),
//! [`knowledge`] (ATT&CK, CWE, the project's docs, embedded and searchable),
//! [`head`] and [`train`] (classification heads trained in Rust on the
//! DistilBERT checkpoint's pooled output), [`datasets`] (the labelled data).
//! The numeric methods the agents call (forecasting, allocation, isolation forest,
//! logistic regression, federated DP-SGD, ...) are the `mesh-numeric` crate's.

pub mod anomaly;
pub mod answer_quality;
pub mod cancel;
pub mod catalogues;
pub mod client_health;
pub mod cloud;
pub mod compliance;
pub mod datasets;
pub mod federated;
pub mod head;
pub mod ioc;
pub mod knowledge;
pub mod lexical;
pub mod loader;
pub mod market;
pub mod nlp_query;
pub mod partners;
pub mod recipes;
pub mod resource;
pub mod revenue;
pub mod techniques;
pub mod text;
pub mod threat;
pub mod train;
pub mod user_state;

use std::future::Future;

use serde::{de::DeserializeOwned, Serialize};

/// The ten agents of the mesh and the route each one serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    ThreatIntelligence,
    MarketIntelligence,
    NlpQuery,
    PartnerMatching,
    ClientHealth,
    RevenueForecasting,
    AnomalyDetection,
    Compliance,
    ResourceAllocation,
    FederatedLearning,
}

impl AgentKind {
    /// Every agent, in a stable order.
    pub const ALL: [AgentKind; 10] = [
        Self::ThreatIntelligence,
        Self::MarketIntelligence,
        Self::NlpQuery,
        Self::PartnerMatching,
        Self::ClientHealth,
        Self::RevenueForecasting,
        Self::AnomalyDetection,
        Self::Compliance,
        Self::ResourceAllocation,
        Self::FederatedLearning,
    ];

    /// Whether it reads text with the sentence encoder (the five language agents); the
    /// numeric ones need no encoder.
    pub fn is_language(self) -> bool {
        matches!(
            self,
            Self::ThreatIntelligence
                | Self::MarketIntelligence
                | Self::NlpQuery
                | Self::PartnerMatching
                | Self::Compliance
        )
    }

    /// The POST route of the prototype's API contract.
    pub fn route(self) -> &'static str {
        match self {
            Self::ThreatIntelligence => "/threat-intelligence/analyze",
            Self::MarketIntelligence => "/market-intelligence/analyze",
            Self::NlpQuery => "/nlp-query/ask",
            Self::PartnerMatching => "/collaboration/match",
            Self::ClientHealth => "/client-health/predict",
            Self::RevenueForecasting => "/revenue/forecast",
            Self::AnomalyDetection => "/anomaly/detect",
            Self::Compliance => "/compliance/check",
            Self::ResourceAllocation => "/resource/optimize",
            Self::FederatedLearning => "/federated/train",
        }
    }

    /// The short POST alias the prototype's frontend called (`/threat-intelligence`, ...).
    pub fn alias(self) -> &'static str {
        let route = self.route();
        &route[..route[1..].find('/').map_or(route.len(), |i| i + 1)]
    }

    /// The name used by `msp-mesh score --agent` (kebab-case).
    pub fn cli_name(self) -> &'static str {
        match self {
            Self::ThreatIntelligence => "threat-intelligence",
            Self::MarketIntelligence => "market-intelligence",
            Self::NlpQuery => "nlp-query",
            Self::PartnerMatching => "partner-matching",
            Self::ClientHealth => "client-health",
            Self::RevenueForecasting => "revenue-forecasting",
            Self::AnomalyDetection => "anomaly-detection",
            Self::Compliance => "compliance",
            Self::ResourceAllocation => "resource-allocation",
            Self::FederatedLearning => "federated-learning",
        }
    }
}

/// Which agents a process serves: all (the local server), or a few (a Lambda function per
/// agent loads only its own models, which keeps its cold start short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSelection(Option<Vec<AgentKind>>);

impl AgentSelection {
    /// Every agent.
    pub fn all() -> Self {
        Self(None)
    }

    /// No agent.
    pub fn none() -> Self {
        Self(Some(Vec::new()))
    }

    /// Only `kind`.
    pub fn only(kind: AgentKind) -> Self {
        Self(Some(vec![kind]))
    }

    /// Whether `kind` is served.
    pub fn contains(&self, kind: AgentKind) -> bool {
        self.0.as_ref().is_none_or(|kinds| kinds.contains(&kind))
    }

    /// Why an agent that is not selected is not loaded.
    pub fn excluded_reason(&self) -> String {
        let served: Vec<&str> = AgentKind::ALL
            .into_iter()
            .filter(|k| self.contains(*k))
            .map(AgentKind::cli_name)
            .collect();
        format!(
            "not served by this process (--only-agents {})",
            if served.is_empty() {
                "none".to_string()
            } else {
                served.join(",")
            }
        )
    }
}

impl Default for AgentSelection {
    fn default() -> Self {
        Self::all()
    }
}

impl std::str::FromStr for AgentSelection {
    type Err = String;

    /// `all`, `none`, or a comma list of agent names (`threat-intelligence,compliance`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => return Ok(Self::all()),
            "none" => return Ok(Self(Some(Vec::new()))),
            _ => {}
        }
        let mut kinds = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = AgentKind::ALL
                .into_iter()
                .find(|k| k.cli_name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = AgentKind::ALL.iter().map(|k| k.cli_name()).collect();
                    format!(
                        "unknown agent `{name}` (one of all, none, {})",
                        names.join(", ")
                    )
                })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err("name at least one agent, or `all` or `none`".into());
        }
        Ok(Self(Some(kinds)))
    }
}

/// Errors an agent reports.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A request field is invalid (HTTP 422 naming the field).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The model behind the agent failed.
    #[error(transparent)]
    Inference(#[from] mesh_inference::InferenceError),
    /// A knowledge corpus or data set is missing or malformed.
    #[error(transparent)]
    Knowledge(#[from] knowledge::KnowledgeError),
    /// A model, head or data set the agent needs is not available.
    #[error("{0}")]
    Unavailable(String),
}

impl AgentError {
    /// A validation error naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl From<candle_core::Error> for AgentError {
    fn from(e: candle_core::Error) -> Self {
        Self::Inference(mesh_inference::InferenceError::from(e))
    }
}

/// An agent: validated request in, computed response out, naming the model that produced it.
pub trait Agent: Send + Sync + 'static {
    type Request: DeserializeOwned + Send + 'static;
    type Response: Answer;

    /// Which agent this is.
    const KIND: AgentKind;

    /// The model(s) behind the answers (`id@version`, joined with ` + `), reported as `model_used`.
    fn model_used(&self) -> String;

    /// Answers one request.
    fn handle(
        &self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, AgentError>> + Send;
}

/// An agent's typed answer: what the mesh stores and publishes besides the JSON body, read
/// from the response's own fields (never from its JSON by name).
pub trait Answer: Serialize + Send + 'static {
    /// The model that produced this answer (`id@version`, or the cloud model id).
    fn model_used(&self) -> &str;

    /// What the recorder and the alert rules act on; nothing by default.
    fn facts(&self) -> Facts {
        Facts::default()
    }
}

/// What an answer says that the mesh acts on: a threat to store and alert on, a client at
/// risk to alert on, network metrics to aggregate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub threat: Option<ThreatFacts>,
    pub client_risk: Option<ClientRiskFacts>,
    pub network: Vec<NetworkFact>,
}

/// A threat judgement (threat intelligence).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreatFacts {
    /// LOW, MEDIUM, HIGH or CRITICAL.
    pub severity: String,
    pub threat_type: String,
    /// Calibrated probability of `threat_type` (the answer's `f32`, widened as its JSON value is).
    pub confidence: f64,
    /// The indicators found (as the answer's JSON).
    pub indicators: serde_json::Value,
    pub recommended_actions: Vec<String>,
}

/// A client's churn risk (client health).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRiskFacts {
    /// Low, Medium, High or Critical.
    pub risk_level: String,
    pub client_id: Option<String>,
    pub churn_risk: f64,
}

/// One network-intelligence metric: of one MSP (`msp-3`) or mesh-wide (`mesh`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkFact {
    pub msp_id: String,
    pub metric_type: &'static str,
    pub value: f64,
}

/// Current UTC time as ISO 8601 (`2026-11-25T12:34:56.789Z`), the `timestamp` of every response.
pub fn now_iso8601() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Checks that a required text field holds something other than white space and is not too long.
pub fn require_text(field: &str, value: &str, max_chars: usize) -> Result<(), AgentError> {
    if value.trim().is_empty() {
        return Err(AgentError::invalid(
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(AgentError::invalid(
            field,
            format!("`{field}` holds {chars} characters; at most {max_chars}"),
        ));
    }
    Ok(())
}

/// Checks that `head` reads the pooled output of the encoder the backend runs.
pub fn ensure_head_fits(
    head: &head::ClassificationHead,
    encoder: &mesh_inference::backend::EmbeddingBackend,
) -> Result<(), AgentError> {
    let config = head.config();
    if !config.accepts_encoder(encoder.model_id()) || config.dim != encoder.dim() {
        return Err(AgentError::Unavailable(format!(
            "head {} was trained on {} ({} dims) but the server runs {} ({} dims)",
            config.versioned_id(),
            config.base_model,
            config.dim,
            encoder.model_id(),
            encoder.dim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_aliases_match_the_contract() {
        let routes: std::collections::HashSet<_> =
            AgentKind::ALL.iter().map(|a| a.route()).collect();
        assert_eq!(routes.len(), 10);
        assert!(routes.contains("/collaboration/match"));
        assert_eq!(
            AgentKind::ThreatIntelligence.alias(),
            "/threat-intelligence"
        );
        assert_eq!(AgentKind::PartnerMatching.alias(), "/collaboration");
        assert_eq!(AgentKind::RevenueForecasting.alias(), "/revenue");
    }

    #[test]
    fn text_validation_names_the_field() {
        assert!(require_text("text", "hello", 10).is_ok());
        let e = require_text("text", "  \n", 10).unwrap_err();
        assert!(matches!(e, AgentError::Invalid { ref field, .. } if field == "text"));
        assert!(require_text("query", "x".repeat(11).as_str(), 10).is_err());
    }
}

#[cfg(test)]
mod selection_tests {
    use super::*;

    #[test]
    fn agent_selection_parses_names_all_and_none() {
        let all: AgentSelection = "all".parse().unwrap();
        assert!(AgentKind::ALL.into_iter().all(|k| all.contains(k)));
        let none: AgentSelection = "none".parse().unwrap();
        assert!(AgentKind::ALL.into_iter().all(|k| !none.contains(k)));
        let two: AgentSelection = "threat-intelligence, compliance".parse().unwrap();
        assert!(two.contains(AgentKind::ThreatIntelligence));
        assert!(two.contains(AgentKind::Compliance));
        assert!(!two.contains(AgentKind::NlpQuery));
        assert_eq!(
            two.excluded_reason(),
            "not served by this process (--only-agents threat-intelligence,compliance)"
        );
        assert!("threat"
            .parse::<AgentSelection>()
            .unwrap_err()
            .contains("unknown agent `threat`"));
        assert!(",".parse::<AgentSelection>().is_err());
    }
}
