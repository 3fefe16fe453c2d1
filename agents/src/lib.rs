//! The ten MSP agents behind one trait.
//!
//! This crate holds the contract every agent implements; the agents themselves
//! arrive with the language-agent and numeric-agent issues. Nothing here
//! answers requests yet, so no route exposes an agent.

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
}

/// An agent: validated request in, computed response out, naming the model that produced it.
pub trait Agent: Send + Sync {
    type Request: DeserializeOwned + Send;
    type Response: Serialize + Send;

    /// Which agent this is.
    fn kind(&self) -> AgentKind;
    /// `id@version` of the model (or algorithm) behind the answers, reported as `model_used`.
    fn model_used(&self) -> String;
    /// Answers one request.
    fn handle(&self, request: Self::Request) -> Result<Self::Response, AgentError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_distinct_and_match_the_contract() {
        let routes: std::collections::HashSet<_> =
            AgentKind::ALL.iter().map(|a| a.route()).collect();
        assert_eq!(routes.len(), 10);
        assert!(routes.contains("/collaboration/match"));
    }
}
