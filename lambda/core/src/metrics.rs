//! Measured service metrics: per-agent requests, errors and latency (p50/p95 over a sliding
//! window of the latest calls), per-route status counts, and the counters of protection,
//! events and sinks. The serving layer feeds them and serves them (`GET /agents/status`,
//! `GET /metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Mutex;
use std::time::Duration;

use mesh_agents::AgentKind;
use mesh_numeric::stats::quantile;

use crate::history::{Counted, History};

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
    /// Requests, errors and alerts per agent and minute (`GET /metrics/history`).
    pub history: History,
}

fn index(kind: AgentKind) -> usize {
    AgentKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL")
}

impl Metrics {
    /// Records one answered agent request.
    pub fn record_agent(&self, kind: AgentKind, status: u16, elapsed: Duration, at_ms: i64) {
        let mut stats = self.agents[index(kind)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        stats.requests += 1;
        self.history.add(kind, Counted::Request, 1, at_ms);
        if status >= 400 {
            self.history.add(kind, Counted::Error, 1, at_ms);
        }
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

    /// Responses so far by (route, status), in route order.
    pub fn route_counts(&self) -> Vec<((String, u16), u64)> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// The counters and latency quantiles of one agent now.
    pub fn snapshot(&self, kind: AgentKind) -> AgentSnapshot {
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

/// One agent's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentSnapshot {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub total_seconds: f64,
    pub last_activity_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
