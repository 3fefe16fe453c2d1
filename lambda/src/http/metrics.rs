//! The metrics over HTTP: the middleware that times every request and counts it by route and
//! agent ([`track`]), `GET /agents/status` (JSON, [`mesh_core::status`]), `GET /metrics`
//! (Prometheus text exposition format) from the core's [`mesh_core::metrics::Metrics`], and
//! `GET /metrics/history` (per-minute counts, [`mesh_core::history`]).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mesh_agents::AgentKind;
use mesh_core::error::ErrorBody;
use mesh_core::history::{HistoryWindow, HISTORY_MINUTES};
use mesh_core::status::{agents_status, AgentsStatus};
use serde::Deserialize;

use crate::http::error::{query, ApiError};
use crate::http::progress::{hold_until_end, Streamed};
use crate::http::state::AppState;

/// The agent whose model work a request is (POST to its route, its alias or its training route).
pub fn agent_for(method: &Method, path: &str) -> Option<AgentKind> {
    if method != Method::POST {
        return None;
    }
    AgentKind::ALL.into_iter().find(|k| {
        k.route() == path
            || k.alias() == path
            || (*k == AgentKind::ClientHealth && path == "/client-health/train")
    })
}

/// Middleware: times every request and counts it by route, and by agent for model routes.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let agent = route
        .as_deref()
        .and_then(|r| agent_for(request.method(), r));
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let record = move |status: u16| {
        if let Some(kind) = agent {
            state
                .metrics
                .record_agent(kind, status, started.elapsed(), mesh_core::store::now_ms());
        }
        state
            .metrics
            .record_route(route.as_deref().unwrap_or("(unmatched)"), status);
    };
    // A streamed answer is counted when its body ends, with the status its work ended with.
    if let Some(streamed) = response.extensions().get::<Streamed>().cloned() {
        return hold_until_end(response, OnDrop(Some(move || record(streamed.status()))));
    }
    record(response.status().as_u16());
    response
}

/// Runs its closure when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Every agent: loaded or not, model, requests, errors, p50/p95 latency, last activity.
#[utoipa::path(get, path = "/agents/status", responses((status = 200, body = AgentsStatus)))]
pub async fn agents_status_route(State(state): State<Arc<AppState>>) -> Json<AgentsStatus> {
    Json(agents_status(&state.mesh).await)
}

/// Query of `GET /metrics/history`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// Minutes up to now (default 60, at most 1,440).
    pub minutes: Option<u32>,
}

/// Every agent's requests, errors and alerts per minute, oldest first, over the last `minutes`
/// (counted by this process as they happen).
#[utoipa::path(get, path = "/metrics/history", params(HistoryQuery),
    responses((status = 200, body = HistoryWindow), (status = 422, body = ErrorBody)))]
pub async fn history_route(
    State(state): State<Arc<AppState>>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryWindow>, ApiError> {
    let minutes = query(q)?.minutes.unwrap_or(60);
    if !(1..=HISTORY_MINUTES as u32).contains(&minutes) {
        return Err(ApiError::validation(
            "minutes",
            format!("`minutes` must be 1 to {HISTORY_MINUTES}, not {minutes}"),
        ));
    }
    let now = mesh_core::store::now_ms();
    Ok(Json(state.metrics.history.window(now, minutes as usize)))
}

/// The same measurements in Prometheus text exposition format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics_route(State(state): State<Arc<AppState>>) -> Response {
    let body = prometheus_text(&state);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Escapes a label value (backslash, double quote, new line).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every metric.
pub fn prometheus_text(state: &AppState) -> String {
    let m = &state.metrics;
    let mut out = String::new();
    let snapshots: Vec<_> = state
        .agent_models()
        .into_iter()
        .map(|(kind, model)| (kind.cli_name(), model.is_ok(), m.snapshot(kind)))
        .collect();

    family(
        &mut out,
        "mesh_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    let _ = writeln!(
        out,
        "mesh_uptime_seconds {}",
        state.started.elapsed().as_secs_f64()
    );

    family(
        &mut out,
        "mesh_agent_model_loaded",
        "gauge",
        "1 when the agent's model is loaded.",
    );
    for (a, loaded, _) in &snapshots {
        let _ = writeln!(
            out,
            "mesh_agent_model_loaded{{agent=\"{a}\"}} {}",
            u8::from(*loaded)
        );
    }

    family(
        &mut out,
        "mesh_agent_requests_total",
        "counter",
        "Agent requests answered, by status class.",
    );
    for (a, _, s) in &snapshots {
        let ok = s.requests - s.client_errors - s.server_errors;
        for (class, n) in [
            ("2xx", ok),
            ("4xx", s.client_errors),
            ("5xx", s.server_errors),
        ] {
            let _ = writeln!(
                out,
                "mesh_agent_requests_total{{agent=\"{a}\",class=\"{class}\"}} {n}"
            );
        }
    }

    let duration = "mesh_agent_request_duration_seconds";
    family(
        &mut out,
        duration,
        "summary",
        "Agent request latency; quantiles over the latest 2048 calls.",
    );
    for (a, _, s) in &snapshots {
        for (q, v) in [("0.5", s.p50_seconds), ("0.95", s.p95_seconds)] {
            if let Some(v) = v {
                let _ = writeln!(out, "{duration}{{agent=\"{a}\",quantile=\"{q}\"}} {v}");
            }
        }
        let _ = writeln!(out, "{duration}_sum{{agent=\"{a}\"}} {}", s.total_seconds);
        let _ = writeln!(out, "{duration}_count{{agent=\"{a}\"}} {}", s.requests);
    }

    family(
        &mut out,
        "mesh_http_responses_total",
        "counter",
        "Responses by route and status code.",
    );
    for ((route, status), n) in m.route_counts() {
        let _ = writeln!(
            out,
            "mesh_http_responses_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(&route)
        );
    }

    let counters = [
        (
            "mesh_rate_limited_total",
            "Requests refused by the per-key rate limit (429).",
            &m.rate_limited,
        ),
        (
            "mesh_overloaded_total",
            "Requests refused at the in-flight model work bound (429).",
            &m.overloaded,
        ),
        (
            "mesh_timeouts_total",
            "Requests that ran past the request timeout (504).",
            &m.timeouts,
        ),
        (
            "mesh_unauthorized_total",
            "Requests without a valid API key (401).",
            &m.unauthorized,
        ),
        (
            "mesh_events_published_total",
            "Events published (agent results and alerts).",
            &m.events_published,
        ),
        (
            "mesh_threat_notifications_total",
            "HIGH and CRITICAL threats sent to Amazon EventBridge.",
            &m.threat_notifications,
        ),
        (
            "mesh_event_sink_deliveries_total",
            "Batches of events delivered to a sink (Kinesis stream, WebSocket API connections).",
            &m.event_sink_deliveries,
        ),
        (
            "mesh_event_sink_failures_total",
            "Batches of events a sink failed to take.",
            &m.event_sink_failures,
        ),
        (
            "mesh_threat_notification_failures_total",
            "Threats EventBridge did not accept (after the SDK's retries).",
            &m.threat_notification_failures,
        ),
        (
            "mesh_ws_lagged_total",
            "Times a WebSocket client fell behind and was told what it missed.",
            &m.ws_lagged,
        ),
        (
            "mesh_ws_dropped_total",
            "WebSocket clients dropped for not reading.",
            &m.ws_dropped,
        ),
    ];
    for (name, help, counter) in counters {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
    }
    family(
        &mut out,
        "mesh_ws_connections",
        "gauge",
        "Open WebSocket connections.",
    );
    let _ = writeln!(
        out,
        "mesh_ws_connections {}",
        m.ws_connections.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "mesh_inflight_model_requests",
        "gauge",
        "Model requests running now.",
    );
    let _ = writeln!(
        out,
        "mesh_inflight_model_requests {}",
        state.protection.inflight_now()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_routes_map_to_agents() {
        assert_eq!(
            agent_for(&Method::POST, "/threat-intelligence/analyze"),
            Some(AgentKind::ThreatIntelligence)
        );
        assert_eq!(
            agent_for(&Method::POST, "/anomaly"),
            Some(AgentKind::AnomalyDetection)
        );
        assert_eq!(
            agent_for(&Method::POST, "/client-health/train"),
            Some(AgentKind::ClientHealth)
        );
        assert_eq!(agent_for(&Method::GET, "/client-health/models"), None);
        assert_eq!(agent_for(&Method::POST, "/embed"), None);
    }
}
