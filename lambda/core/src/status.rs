//! Each agent's status: loaded or not, its model, its measured requests, errors and latency,
//! its last activity (`GET /agents/status`, WebSocket `agent_status`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::mesh::Mesh;
use crate::store::{iso8601_ms, AgentStateRecord};

/// One agent in `GET /agents/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentStatus {
    /// `active` when its model is loaded, `unavailable` when the process serving it could
    /// not load it, `not_started` when no process serving it has started yet.
    pub status: &'static str,
    /// The process that serves it: this one, or the one whose stored state this is (a Lambda
    /// function's name, else `<host>:<pid>`).
    pub served_by: Option<String>,
    /// When that process last stored its state (start-up, then at most every minute while it
    /// answers), ISO 8601; for this process, now.
    pub heartbeat: Option<String>,
    /// Milliseconds that process took from the start of loading to ready.
    pub load_ms: Option<u64>,
    /// Share of its requests since start-up answered without a server error (5xx); 1 before
    /// the first request, 0 when the agent is not loaded.
    pub health_score: f64,
    pub model_loaded: bool,
    /// The model behind its answers, when loaded.
    pub model_used: Option<String>,
    /// Why it is not loaded.
    pub unavailable_reason: Option<String>,
    /// Its latest stored result (survives restarts), ISO 8601.
    pub last_activity: Option<String>,
    /// Counters since start-up (of another process: as of its heartbeat).
    pub requests: u64,
    pub errors: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// Latency quantiles over its latest calls (at most 2,048), milliseconds.
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
}

/// `GET /agents/status` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentsStatus {
    pub agents: BTreeMap<String, AgentStatus>,
    pub total_agents: usize,
    pub active_agents: usize,
    pub status_time: String,
    pub websocket_connections: i64,
}

/// The status of every agent now: those this process serves from its own models and
/// measured requests; the others from the state the processes serving them stored last
/// ([`Mesh::record_agent_states`]), or `not_started`.
pub async fn agents_status(state: &Mesh) -> AgentsStatus {
    // Each read on its own: a function allowed only one of them still reports the other.
    let (stored, records) = crate::store::off_thread(&state.store, |s| {
        Ok((
            s.last_activity().unwrap_or_default(),
            s.latest_agent_states().unwrap_or_default(),
        ))
    })
    .await
    .unwrap_or_default();
    let stored: BTreeMap<String, i64> = stored.into_iter().collect();
    let records: BTreeMap<String, AgentStateRecord> =
        records.into_iter().map(|r| (r.agent.clone(), r)).collect();
    let now = crate::store::now_ms();
    let mut agents = BTreeMap::new();
    for (kind, model) in state.agent_models() {
        let last_stored = stored.get(kind.cli_name()).copied();
        let status = if state.served.contains(kind) {
            own_status(state, kind, model, last_stored, now)
        } else {
            match records.get(kind.cli_name()) {
                Some(record) => stored_status(record, last_stored),
                None => not_started(last_stored),
            }
        };
        agents.insert(kind.cli_name().to_string(), status);
    }
    AgentsStatus {
        total_agents: agents.len(),
        active_agents: agents.values().filter(|a| a.model_loaded).count(),
        agents,
        status_time: mesh_agents::now_iso8601(),
        websocket_connections: state.metrics.ws_connections.load(Ordering::Relaxed),
    }
}

/// An agent of this process: its model and its measured requests.
fn own_status(
    state: &Mesh,
    kind: mesh_agents::AgentKind,
    model: Result<String, String>,
    last_stored: Option<i64>,
    now: i64,
) -> AgentStatus {
    let s = state.metrics.snapshot(kind);
    let loaded = model.is_ok();
    let health_score = match (loaded, s.requests) {
        (false, _) => 0.0,
        (true, 0) => 1.0,
        (true, n) => 1.0 - s.server_errors as f64 / n as f64,
    };
    let (model_used, unavailable_reason) = match model {
        Ok(m) => (Some(m), None),
        Err(r) => (None, Some(r)),
    };
    AgentStatus {
        status: if loaded { "active" } else { "unavailable" },
        served_by: Some(state.instance.clone()),
        heartbeat: Some(iso8601_ms(now)),
        load_ms: state.load_ms,
        health_score,
        model_loaded: loaded,
        model_used,
        unavailable_reason,
        last_activity: s.last_activity_ms.max(last_stored).map(iso8601_ms),
        requests: s.requests,
        errors: s.client_errors + s.server_errors,
        client_errors: s.client_errors,
        server_errors: s.server_errors,
        p50_latency_ms: s.p50_seconds.map(|v| v * 1e3),
        p95_latency_ms: s.p95_seconds.map(|v| v * 1e3),
    }
}

/// An agent of another process, as that process stored it last.
fn stored_status(record: &AgentStateRecord, last_stored: Option<i64>) -> AgentStatus {
    let state = &record.state;
    let loaded = state["model_loaded"].as_bool().unwrap_or(false);
    let count = |field: &str| state[field].as_u64().unwrap_or(0);
    let (requests, client_errors, server_errors) = (
        count("requests"),
        count("client_errors"),
        count("server_errors"),
    );
    let health_score = match (loaded, requests) {
        (false, _) => 0.0,
        (true, 0) => 1.0,
        (true, n) => 1.0 - server_errors as f64 / n as f64,
    };
    AgentStatus {
        status: if loaded { "active" } else { "unavailable" },
        served_by: state["served_by"].as_str().map(str::to_string),
        heartbeat: Some(record.timestamp.clone()),
        load_ms: state["load_ms"].as_u64(),
        health_score,
        model_loaded: loaded,
        model_used: state["model_used"].as_str().map(str::to_string),
        unavailable_reason: state["reason"].as_str().map(str::to_string),
        last_activity: last_stored.map(iso8601_ms),
        requests,
        errors: client_errors + server_errors,
        client_errors,
        server_errors,
        p50_latency_ms: state["p50_latency_ms"].as_f64(),
        p95_latency_ms: state["p95_latency_ms"].as_f64(),
    }
}

/// An agent no process serving it has reported yet.
fn not_started(last_stored: Option<i64>) -> AgentStatus {
    AgentStatus {
        status: "not_started",
        served_by: None,
        heartbeat: None,
        load_ms: None,
        health_score: 0.0,
        model_loaded: false,
        model_used: None,
        unavailable_reason: None,
        last_activity: last_stored.map(iso8601_ms),
        requests: 0,
        errors: 0,
        client_errors: 0,
        server_errors: 0,
        p50_latency_ms: None,
        p95_latency_ms: None,
    }
}
