//! Measured service metrics: per-agent requests, errors and latency (p50/p95 over a sliding
//! window of the latest calls), per-route status counts and the protection counters; served
//! as `GET /agents/status` (JSON) and `GET /metrics` (Prometheus text exposition format).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mesh_agents::AgentKind;
use serde::Serialize;

use crate::store::iso8601_ms;
use crate::AppState;

/// Latencies kept per agent for the quantiles.
pub const LATENCY_WINDOW: usize = 2048;

/// One agent's counters.
#[derive(Debug, Default)]
struct AgentStats {
    requests: u64,
    client_errors: u64,
    server_errors: u64,
    /// Seconds of the latest calls, oldest first.
    window: VecDeque<f64>,
    total_seconds: f64,
    last_activity_ms: Option<i64>,
}

/// Counters of the whole service.
#[derive(Debug, Default)]
pub struct Metrics {
    agents: [Mutex<AgentStats>; 10],
    /// (route, status) -> responses.
    routes: Mutex<BTreeMap<(String, u16), u64>>,
    pub rate_limited: AtomicU64,
    pub overloaded: AtomicU64,
    pub timeouts: AtomicU64,
    pub unauthorized: AtomicU64,
    pub ws_connections: AtomicI64,
    pub ws_lagged: AtomicU64,
    pub ws_dropped: AtomicU64,
    pub events_published: AtomicU64,
    /// HIGH / CRITICAL threats sent to EventBridge, and sends that failed.
    pub threat_notifications: AtomicU64,
    pub threat_notification_failures: AtomicU64,
    /// Deliveries of published events to sinks (Kinesis, API Gateway WebSocket connections),
    /// and deliveries that failed.
    pub event_sink_deliveries: AtomicU64,
    pub event_sink_failures: AtomicU64,
}

fn index(kind: AgentKind) -> usize {
    AgentKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL")
}

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

/// The `q` quantile (0..=1) of `values` by linear interpolation (as NumPy's default).
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lower, upper) = (position.floor() as usize, position.ceil() as usize);
    let fraction = position - lower as f64;
    Some(sorted[lower] + (sorted[upper] - sorted[lower]) * fraction)
}

impl Metrics {
    /// Records one answered agent request.
    pub fn record_agent(&self, kind: AgentKind, status: u16, elapsed: Duration, at_ms: i64) {
        let mut stats = self.agents[index(kind)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        stats.requests += 1;
        match status {
            400..=499 => stats.client_errors += 1,
            500..=599 => stats.server_errors += 1,
            _ => {}
        }
        let seconds = elapsed.as_secs_f64();
        if stats.window.len() == LATENCY_WINDOW {
            stats.window.pop_front();
        }
        stats.window.push_back(seconds);
        stats.total_seconds += seconds;
        stats.last_activity_ms = Some(at_ms);
    }

    /// Records one response of any route.
    pub fn record_route(&self, route: &str, status: u16) {
        *self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    fn snapshot(&self, kind: AgentKind) -> AgentSnapshot {
        let stats = self.agents[index(kind)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let window: Vec<f64> = stats.window.iter().copied().collect();
        AgentSnapshot {
            requests: stats.requests,
            client_errors: stats.client_errors,
            server_errors: stats.server_errors,
            p50_seconds: quantile(&window, 0.5),
            p95_seconds: quantile(&window, 0.95),
            total_seconds: stats.total_seconds,
            last_activity_ms: stats.last_activity_ms,
        }
    }
}

struct AgentSnapshot {
    requests: u64,
    client_errors: u64,
    server_errors: u64,
    p50_seconds: Option<f64>,
    p95_seconds: Option<f64>,
    total_seconds: f64,
    last_activity_ms: Option<i64>,
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
    let status = response.status().as_u16();
    if let Some(kind) = agent {
        state
            .metrics
            .record_agent(kind, status, started.elapsed(), crate::store::now_ms());
    }
    state
        .metrics
        .record_route(route.as_deref().unwrap_or("(unmatched)"), status);
    response
}

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
pub async fn agents_status(state: &AppState) -> AgentsStatus {
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
        status_time: crate::api::now_iso8601(),
        websocket_connections: state.metrics.ws_connections.load(Ordering::Relaxed),
    }
}

/// Every agent: loaded or not, model, requests, errors, p50/p95 latency, last activity.
#[utoipa::path(get, path = "/agents/status", responses((status = 200, body = AgentsStatus)))]
pub async fn agents_status_route(State(state): State<Arc<AppState>>) -> Json<AgentsStatus> {
    Json(agents_status(&state).await)
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
    for ((route, status), n) in m.routes.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "mesh_http_responses_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
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
    fn quantiles_match_numpy_linear_interpolation() {
        // numpy.quantile([1, 2, 3, 4], [0.5, 0.95]) == [2.5, 3.85]
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert!((quantile(&v, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
    }

    #[test]
    fn agent_counters_and_window() {
        let m = Metrics::default();
        for ms in 1..=LATENCY_WINDOW as u64 + 10 {
            m.record_agent(
                AgentKind::Compliance,
                200,
                Duration::from_millis(ms),
                ms as i64,
            );
        }
        m.record_agent(AgentKind::Compliance, 422, Duration::from_millis(1), 0);
        m.record_agent(AgentKind::Compliance, 503, Duration::from_millis(1), 0);
        let s = m.snapshot(AgentKind::Compliance);
        assert_eq!(s.requests, LATENCY_WINDOW as u64 + 12);
        assert_eq!((s.client_errors, s.server_errors), (1, 1));
        assert_eq!(s.last_activity_ms, Some(0));
        // The window holds the latest 2,048 latencies: 13..=2058 ms, then 1, 1.
        let p50 = s.p50_seconds.unwrap();
        assert!((p50 - 1.0345).abs() < 1e-3, "{p50}");
        assert_eq!(m.snapshot(AgentKind::NlpQuery).requests, 0);
    }

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
