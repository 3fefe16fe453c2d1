//! Each agent's status: loaded or not, its model, its measured requests, errors and latency,
//! its last activity (`GET /agents/status`, WebSocket `agent_status`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::mesh::Mesh;
use crate::store::iso8601_ms;

/// One agent in `GET /agents/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentStatus {
    /// `active` when its model is loaded, else `unavailable`.
    pub status: &'static str,
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
    /// Counters since start-up.
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

/// Measures the status of every agent now.
pub async fn agents_status(state: &Mesh) -> AgentsStatus {
    let stored: BTreeMap<String, i64> =
        crate::store::off_thread(&state.store, |s| s.last_activity())
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
    let mut agents = BTreeMap::new();
    for (kind, model) in state.agent_models() {
        let s = state.metrics.snapshot(kind);
        let loaded = model.is_ok();
        let last_ms = s.last_activity_ms.max(stored.get(kind.cli_name()).copied());
        let health_score = match (loaded, s.requests) {
            (false, _) => 0.0,
            (true, 0) => 1.0,
            (true, n) => 1.0 - s.server_errors as f64 / n as f64,
        };
        let (model_used, unavailable_reason) = match model {
            Ok(m) => (Some(m), None),
            Err(r) => (None, Some(r)),
        };
        agents.insert(
            kind.cli_name().to_string(),
            AgentStatus {
                status: if loaded { "active" } else { "unavailable" },
                health_score,
                model_loaded: loaded,
                model_used,
                unavailable_reason,
                last_activity: last_ms.map(iso8601_ms),
                requests: s.requests,
                errors: s.client_errors + s.server_errors,
                client_errors: s.client_errors,
                server_errors: s.server_errors,
                p50_latency_ms: s.p50_seconds.map(|v| v * 1e3),
                p95_latency_ms: s.p95_seconds.map(|v| v * 1e3),
            },
        );
    }
    AgentsStatus {
        total_agents: agents.len(),
        active_agents: agents.values().filter(|a| a.model_loaded).count(),
        agents,
        status_time: mesh_agents::now_iso8601(),
        websocket_connections: state.metrics.ws_connections.load(Ordering::Relaxed),
    }
}
