//! The table of agents: which loaded agent serves each [`AgentKind`] ([`with_agent!`]), and
//! running one request through it ([`crate::Mesh::dispatch`], [`crate::Mesh::run`]) into an
//! [`AgentAnswer`]: the JSON body with, typed, what the recorder needs.

use std::sync::Arc;

use mesh_agents::loader::Loaded;
use mesh_agents::{Agent, AgentKind, Answer, Facts};
use serde_json::Value;

use crate::error::{field_in_serde_message, MeshError};

/// The agent `msp-mesh score --agent <name>` names (kebab-case or the route's first segment).
pub fn parse_agent(name: &str) -> Option<AgentKind> {
    AgentKind::ALL
        .into_iter()
        .find(|k| k.cli_name() == name || k.alias().trim_start_matches('/') == name)
}

/// Every agent's name, comma-separated (for messages).
pub fn agent_names() -> String {
    AgentKind::ALL.map(|k| k.cli_name()).join(", ")
}

/// Runs `$body` with `$agent` bound to the loaded agent of `$kind` (a `&Loaded<_>` of that
/// agent's own type) in `$mesh` (anything with the `agents` and `numeric` fields of
/// [`crate::Mesh`]), so one generic function serves all ten. This is the one table of agents.
#[macro_export]
macro_rules! with_agent {
    ($mesh:expr, $kind:expr, $agent:ident => $body:expr) => {{
        use mesh_agents::AgentKind as K;
        let (a, n) = (&$mesh.agents, &$mesh.numeric);
        match $kind {
            K::ThreatIntelligence => {
                let $agent = &a.threat;
                $body
            }
            K::MarketIntelligence => {
                let $agent = &a.market;
                $body
            }
            K::NlpQuery => {
                let $agent = &a.nlp_query;
                $body
            }
            K::PartnerMatching => {
                let $agent = &a.partners;
                $body
            }
            K::Compliance => {
                let $agent = &a.compliance;
                $body
            }
            K::AnomalyDetection => {
                let $agent = &n.anomaly;
                $body
            }
            K::RevenueForecasting => {
                let $agent = &n.revenue;
                $body
            }
            K::ResourceAllocation => {
                let $agent = &n.resource;
                $body
            }
            K::ClientHealth => {
                let $agent = &n.client_health;
                $body
            }
            K::FederatedLearning => {
                let $agent = &n.federated;
                $body
            }
        }
    }};
}

/// The agent, or [`MeshError::Unavailable`] saying why it is not loaded.
pub fn loaded<A: Agent>(l: &Loaded<A>) -> Result<&Arc<A>, MeshError> {
    l.as_ref().map_err(|reason| {
        MeshError::Unavailable(format!(
            "the {} agent is not loaded: {reason}",
            A::KIND.cli_name()
        ))
    })
}

/// A request body as the agent's request type; a mismatch is [`MeshError::Invalid`] naming the
/// field (its path, e.g. `values[3]`, found by `serde_path_to_error`).
pub fn parse_request<A: Agent>(_agent: &Loaded<A>, body: Value) -> Result<A::Request, MeshError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = match path.as_str() {
            "." => field_in_serde_message(&format!("target type: {message}"))
                .unwrap_or_else(|| "body".to_string()),
            _ => path,
        };
        MeshError::invalid(field, message)
    })
}

/// One agent's answer: its JSON body, and typed, what the recorder acts on.
#[derive(Debug, Clone)]
pub struct AgentAnswer {
    pub kind: AgentKind,
    /// The model that produced it (the answer's own `model_used`).
    pub model_used: String,
    /// The threat, client risk and network metrics it reports.
    pub facts: Facts,
    /// The response as the caller gets it (before `result_id` is added).
    pub body: Value,
}

impl AgentAnswer {
    /// The answer of agent `kind`: its body and its facts.
    pub fn new<R: Answer>(kind: AgentKind, response: &R) -> Result<Self, MeshError> {
        Ok(Self {
            kind,
            model_used: response.model_used().to_string(),
            facts: response.facts(),
            body: without_negative_zero(serde_json::to_value(response)?),
        })
    }
}

/// `value` with every `-0.0` written as `0.0`: a sign on zero means nothing to the people who
/// read the answers (an empty float sum in Rust is `-0.0`), and no response carries one.
pub fn without_negative_zero(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Number(n) if n.as_f64().is_some_and(|x| x == 0.0 && x.is_sign_negative()) => {
                *value = Value::from(0.0);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(fields) => fields.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// Runs one typed request through a loaded agent.
pub async fn run<A: Agent>(
    agent: &Loaded<A>,
    request: A::Request,
) -> Result<AgentAnswer, MeshError> {
    let agent = loaded(agent)?;
    let response = agent.handle(request).await?;
    AgentAnswer::new(A::KIND, &response)
}

/// Parses a JSON body as the agent's request and runs it.
pub async fn run_body<A: Agent>(agent: &Loaded<A>, body: Value) -> Result<AgentAnswer, MeshError> {
    loaded(agent)?; // an agent that is not loaded answers 503 before its body is judged
    let request = parse_request(agent, body)?;
    run(agent, request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negative_zeros_become_zeros_anywhere_in_an_answer() {
        let answer = json!({"score": -0.0, "rows": [{"x": -0.0, "y": -1.5}, 0, -0.0], "n": 3});
        let cleaned = without_negative_zero(answer);
        assert_eq!(
            cleaned.to_string(),
            r#"{"n":3,"rows":[{"x":0.0,"y":-1.5},0,0.0],"score":0.0}"#
        );
    }
}
