//! One request body through the agent of an `AgentKind`: [`with_agent!`] binds the loaded agent,
//! [`answer`] runs it, [`score_record`] turns any failure into the record's answer (batch scoring
//! in [`crate::batch`], async jobs in [`crate::jobs`]).

use mesh_agents::loader::Loaded;
use mesh_agents::{Agent, AgentKind};
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// The agent `msp-mesh score --agent <name>` names (kebab-case or the route's first segment).
pub fn parse_agent(name: &str) -> Option<AgentKind> {
    AgentKind::ALL
        .into_iter()
        .find(|k| k.cli_name() == name || k.alias().trim_start_matches('/') == name)
}

/// Runs `$body` with `$agent` bound to the loaded agent of `$kind` (a `&Loaded<_>` of that
/// agent's own type), so one generic function serves all ten.
#[macro_export]
macro_rules! with_agent {
    ($state:expr, $kind:expr, $agent:ident => $body:expr) => {{
        use mesh_agents::AgentKind as K;
        let (a, n) = (&$state.agents, &$state.numeric);
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

/// A request body as the agent's request type; a mismatch is a 422 naming the field (its
/// path, e.g. `values[3]`, found by `serde_path_to_error`).
pub fn parse_request<A: Agent>(_agent: &Loaded<A>, body: Value) -> Result<A::Request, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = match path.as_str() {
            "." => crate::error::field_in_serde_message(&format!("target type: {message}"))
                .unwrap_or_else(|| "body".to_string()),
            _ => path,
        };
        ApiError::validation(field, message)
    })
}

async fn answer_with<A: Agent>(
    agent: &Loaded<A>,
    body: Value,
) -> Result<(Value, String), ApiError> {
    let loaded = crate::agents_api::loaded(agent)?;
    let request = parse_request(agent, body)?;
    let agent = loaded;
    let response = agent.handle(request).await?;
    Ok((
        serde_json::to_value(response).expect("responses serialise"),
        agent.model_used(),
    ))
}

/// Runs one request body through the agent of `kind`: its response and the agent's model.
pub async fn answer(
    state: &AppState,
    kind: AgentKind,
    body: Value,
) -> Result<(Value, String), ApiError> {
    with_agent!(state, kind, agent => answer_with(agent, body).await)
}

/// Scores one input record (a JSON object, or why the input is not one); never fails: errors
/// become the record's answer, with its `id` passed through when it has one.
pub async fn score_record(
    state: &AppState,
    agent: AgentKind,
    record: Result<Value, String>,
) -> (Value, bool) {
    let mut body = match record {
        Ok(body) => body,
        Err(message) => {
            return (
                json!({"id": null, "error": {"error_type": "bad_json", "error": message}}),
                false,
            )
        }
    };
    let id = body
        .as_object_mut()
        .and_then(|o| o.remove("id"))
        .unwrap_or(Value::Null);
    let result = answer(state, agent, body)
        .await
        .map(|(response, _model)| response);
    match result {
        Ok(Value::Object(mut o)) => {
            o.insert("id".into(), id);
            (Value::Object(o), true)
        }
        Ok(other) => (json!({"id": id, "response": other}), true),
        Err(e) => (json!({"id": id, "error": e.body()}), false),
    }
}
