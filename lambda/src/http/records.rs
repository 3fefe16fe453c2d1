//! The routes that read the store back: `GET /results/{id}`, `GET /results`, `GET /events`,
//! `GET /threats`, `GET /network-intelligence`, `GET /agents/state` (and, mounted here,
//! `/agents/status`, `/metrics`, `/metrics/history` and `/ws`).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use mesh_agents::AgentKind;
use mesh_core::agents::agent_names;
use mesh_core::error::ErrorBody;
use mesh_core::status::{AgentStatus, AgentsStatus};
use mesh_core::store::{
    parse_time_bound, AgentResult, AgentStateRecord, Event, ListFilter, NetworkMetric, StateStore,
    StoreError, ThreatEvent,
};
use serde::{Deserialize, Serialize};

use crate::http::error::{query, ApiError};
use crate::http::state::AppState;

/// Runs a blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&dyn StateStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(state.mesh.blocking(call).await?)
}

/// Query of the listings.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only results of this agent (kebab-case, e.g. `threat-intelligence`).
    pub agent: Option<String>,
    /// Only threats of this severity (LOW, MEDIUM, HIGH, CRITICAL).
    pub severity: Option<String>,
    /// From this time (ISO 8601 or milliseconds since the epoch), inclusive.
    pub since: Option<String>,
    /// Before this time, exclusive.
    pub until: Option<String>,
    /// At most this many, newest first (default 100, at most 1,000).
    pub limit: Option<u32>,
}

impl ListQuery {
    fn filter(self) -> Result<ListFilter, ApiError> {
        let bound = |name: &str, text: Option<String>| -> Result<Option<i64>, ApiError> {
            text.map(|t| {
                parse_time_bound(&t).ok_or_else(|| {
                    ApiError::validation(
                        name,
                        format!(
                            "`{name}` must be ISO 8601 or milliseconds since the epoch, not `{t}`"
                        ),
                    )
                })
            })
            .transpose()
        };
        if let Some(agent) = &self.agent {
            if !AgentKind::ALL.iter().any(|k| k.cli_name() == agent) {
                return Err(ApiError::validation(
                    "agent",
                    format!("unknown agent `{agent}`; expected one of {}", agent_names()),
                ));
            }
        }
        if let Some(severity) = &self.severity {
            if !["LOW", "MEDIUM", "HIGH", "CRITICAL"]
                .contains(&severity.to_ascii_uppercase().as_str())
            {
                return Err(ApiError::validation(
                    "severity",
                    "`severity` must be LOW, MEDIUM, HIGH or CRITICAL",
                ));
            }
        }
        Ok(ListFilter {
            since_ms: bound("since", self.since)?,
            until_ms: bound("until", self.until)?,
            agent: self.agent,
            severity: self.severity,
            limit: self.limit,
        })
    }
}

/// One stored agent result, by the `result_id` its response carried.
#[utoipa::path(get, path = "/results/{id}", params(("id" = String, Path, description = "result_id")),
    responses((status = 200, body = AgentResult), (status = 404, body = ErrorBody)))]
async fn get_result(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<AgentResult>, ApiError> {
    let lookup = id.clone();
    blocking(&s, move |store| store.get_result(&lookup))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("id", format!("no result has id `{id}`")))
}

/// Stored results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultList {
    pub results: Vec<AgentResult>,
    pub count: usize,
}

/// Stored results, newest first, by agent and time.
#[utoipa::path(get, path = "/results", params(ListQuery), responses((status = 200, body = ResultList), (status = 422, body = ErrorBody)))]
async fn list_results(
    State(s): State<Arc<AppState>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ResultList>, ApiError> {
    let filter = query(q)?.filter()?;
    let results = blocking(&s, move |store| store.list_results(&filter)).await?;
    Ok(Json(ResultList {
        count: results.len(),
        results,
    }))
}

/// Stored threat events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreatList {
    pub threats: Vec<ThreatEvent>,
    pub count: usize,
}

/// Threat events, newest first, by severity and time.
#[utoipa::path(get, path = "/threats", params(ListQuery), responses((status = 200, body = ThreatList), (status = 422, body = ErrorBody)))]
async fn list_threats(
    State(s): State<Arc<AppState>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ThreatList>, ApiError> {
    let filter = query(q)?.filter()?;
    let threats = blocking(&s, move |store| store.list_threats(&filter)).await?;
    Ok(Json(ThreatList {
        count: threats.len(),
        threats,
    }))
}

/// Query of `GET /events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// First offset to return (default 1: from the beginning).
    pub from: Option<i64>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<u32>,
    /// Instead of reading from `from`: the newest `limit` events (still oldest first), e.g.
    /// to fill a feed on load before following `/ws` or polling from `next_offset`.
    #[serde(default)]
    pub newest: bool,
}

/// Persisted events from an offset.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
    /// Offset to ask for next.
    pub next_offset: i64,
}

/// Persisted events (agent results and alerts), oldest first, from an offset.
#[utoipa::path(get, path = "/events", params(EventsQuery), responses((status = 200, body = EventList), (status = 422, body = ErrorBody)))]
async fn list_events(
    State(s): State<Arc<AppState>>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let q = query(q)?;
    let from = q.from.unwrap_or(1);
    if from < 0 {
        return Err(ApiError::validation("from", "`from` must be >= 0"));
    }
    if q.newest && q.from.is_some() {
        return Err(ApiError::validation(
            "newest",
            "give `from` or `newest=true`, not both",
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = match q.newest {
        true => s.events.newest(limit).await?,
        false => s.events.replay(from, limit).await?,
    };
    let next_offset = events.last().map_or(from, |e| e.offset + 1);
    Ok(Json(EventList {
        events,
        next_offset,
    }))
}

/// Query of `GET /network-intelligence`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct NetworkQuery {
    /// Only this MSP (`mesh` for network-wide figures).
    pub msp_id: Option<String>,
}

/// Network intelligence metrics.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NetworkList {
    pub metrics: Vec<NetworkMetric>,
}

/// Per-MSP and network-wide metrics, from the federated runs.
#[utoipa::path(get, path = "/network-intelligence", params(NetworkQuery), responses((status = 200, body = NetworkList)))]
async fn network_intelligence(
    State(s): State<Arc<AppState>>,
    q: Result<Query<NetworkQuery>, QueryRejection>,
) -> Result<Json<NetworkList>, ApiError> {
    let msp = query(q)?.msp_id;
    let metrics = blocking(&s, move |store| store.list_network_metrics(msp.as_deref())).await?;
    Ok(Json(NetworkList { metrics }))
}

/// The newest stored state of every agent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentStateList {
    pub states: Vec<AgentStateRecord>,
}

/// Each agent's latest stored state (loaded, model, the change that recorded it).
#[utoipa::path(get, path = "/agents/state", responses((status = 200, body = AgentStateList)))]
async fn agent_states(State(s): State<Arc<AppState>>) -> Result<Json<AgentStateList>, ApiError> {
    let states = blocking(&s, |store| store.latest_agent_states()).await?;
    Ok(Json(AgentStateList { states }))
}

/// The store's routes, plus `/agents/status`, `/metrics` and `/ws`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/results", get(list_results))
        .route("/results/{id}", get(get_result))
        .route("/threats", get(list_threats))
        .route("/events", get(list_events))
        .route("/network-intelligence", get(network_intelligence))
        .route("/agents/state", get(agent_states))
        .route(
            "/agents/status",
            get(crate::http::metrics::agents_status_route),
        )
        .route("/metrics", get(crate::http::metrics::metrics_route))
        .route("/metrics/history", get(crate::http::metrics::history_route))
        .route("/ws", get(crate::http::ws::ws_route))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        get_result,
        list_results,
        list_threats,
        list_events,
        network_intelligence,
        agent_states,
        crate::http::metrics::agents_status_route,
        crate::http::metrics::metrics_route,
        crate::http::metrics::history_route,
        crate::http::ws::ws_route
    ),
    components(schemas(
        AgentResult,
        ResultList,
        ThreatEvent,
        ThreatList,
        Event,
        EventList,
        NetworkMetric,
        NetworkList,
        AgentStateRecord,
        AgentStateList,
        AgentsStatus,
        AgentStatus,
        mesh_core::history::HistoryWindow,
        mesh_core::history::AgentSeries
    ))
)]
pub struct RecordsDoc;
