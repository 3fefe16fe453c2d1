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

async fn score_value<A: Agent>(agent: &Loaded<A>, body: Value) -> Result<Value, ApiError> {
    let agent = crate::agents_api::loaded(agent)?;
    let request: A::Request = serde_json::from_value(body).map_err(|e| {
        let message = e.to_string();
        let field = crate::error::field_in_serde_message(&format!("target type: {message}"))
            .unwrap_or_else(|| "body".to_string());
        ApiError::validation(field, message)
    })?;
    let response = agent.handle(request).await?;
    Ok(serde_json::to_value(response).expect("responses serialise"))
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
    let (a, n) = (&state.agents, &state.numeric);
    let result = match agent {
        AgentKind::ThreatIntelligence => score_value(&a.threat, body).await,
        AgentKind::MarketIntelligence => score_value(&a.market, body).await,
        AgentKind::NlpQuery => score_value(&a.nlp_query, body).await,
        AgentKind::PartnerMatching => score_value(&a.partners, body).await,
        AgentKind::Compliance => score_value(&a.compliance, body).await,
        AgentKind::AnomalyDetection => score_value(&n.anomaly, body).await,
        AgentKind::RevenueForecasting => score_value(&n.revenue, body).await,
        AgentKind::ResourceAllocation => score_value(&n.resource, body).await,
        AgentKind::ClientHealth => score_value(&n.client_health, body).await,
        AgentKind::FederatedLearning => score_value(&n.federated, body).await,
    };
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
