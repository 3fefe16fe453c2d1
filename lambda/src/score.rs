//! `msp-mesh score`: offline batch scoring. One request body per input line (an optional
//! `id` is passed through), one response per output line in input order, `{"id", "error"}`
//! for a bad line without stopping the run. Lines run concurrently, so the backend worker
//! batches their texts together.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::sync::Arc;

use mesh_agents::loader::Loaded;
use mesh_agents::{Agent, AgentKind};
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// Lines in flight at once.
pub const WINDOW: usize = 16;

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScoreSummary {
    pub lines: usize,
    pub errors: usize,
}

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

/// Scores one input line; never fails (errors become the line's answer).
pub async fn score_line(state: &AppState, agent: AgentKind, line: &str) -> (Value, bool) {
    let mut body: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return (
                json!({"id": null, "error": {"error_type": "bad_json", "error": "each line must be a JSON object"}}),
                false,
            )
        }
        Err(e) => {
            return (
                json!({"id": null, "error": {"error_type": "bad_json", "error": e.to_string()}}),
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

/// A line's answer; a line whose task failed (a bug) becomes an error line, the run goes on.
async fn joined(handle: tokio::task::JoinHandle<(Value, bool)>) -> (Value, bool) {
    handle.await.unwrap_or_else(|e| {
        let error =
            json!({"error_type": "internal", "error": format!("scoring this line failed: {e}")});
        (json!({"id": null, "error": error}), false)
    })
}

/// Reads lines from `input`, writes one answer line per input line to `output`, in order.
pub async fn score_stream(
    state: Arc<AppState>,
    agent: AgentKind,
    input: Box<dyn BufRead + Send>,
    output: &mut dyn Write,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ScoreSummary> {
    let mut summary = ScoreSummary::default();
    let mut in_flight: VecDeque<tokio::task::JoinHandle<(Value, bool)>> = VecDeque::new();
    let mut flush_one = |answer: (Value, bool), output: &mut dyn Write| -> anyhow::Result<()> {
        summary.lines += 1;
        summary.errors += usize::from(!answer.1);
        serde_json::to_writer(&mut *output, &answer.0)?;
        output.write_all(b"\n")?;
        progress.inc(1);
        Ok(())
    };
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let state = state.clone();
        in_flight.push_back(tokio::spawn(async move {
            score_line(&state, agent, &line).await
        }));
        if in_flight.len() >= WINDOW {
            let handle = in_flight.pop_front().expect("non-empty");
            flush_one(joined(handle).await, output)?;
        }
    }
    while let Some(handle) = in_flight.pop_front() {
        flush_one(joined(handle).await, output)?;
    }
    output.flush()?;
    Ok(summary)
}
