//! Every agent's requests, errors and alerts per minute over the last 24 hours, kept by this
//! process as they happen (`GET /metrics/history`): the dashboard charts them instead of the
//! difference of two polls of the counters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use mesh_agents::AgentKind;
use serde::Serialize;

use crate::store::iso8601_ms;

/// Minutes kept.
pub const HISTORY_MINUTES: usize = 24 * 60;
const MINUTE_MS: i64 = 60_000;

/// What one count is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A request to the agent's routes, answered or not.
    Request,
    /// A request answered with a 4xx or 5xx status.
    Error,
    /// An alert raised on one of the agent's answers.
    Alert,
}

/// One minute's counts: `[requests, errors, alerts]` per agent, in [`AgentKind::ALL`] order.
#[derive(Debug, Clone, Copy)]
struct Minute {
    minute: i64,
    counts: [[u32; 3]; 10],
}

/// The per-minute counts of the last [`HISTORY_MINUTES`] minutes that saw any.
#[derive(Debug, Default)]
pub struct History {
    minutes: Mutex<VecDeque<Minute>>,
}

/// The counts of a window of minutes, one value per minute, oldest first (minutes without a
/// count are zeros).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryWindow {
    /// Length of each bucket (60).
    pub bucket_seconds: u32,
    /// Start of each minute (RFC 3339, UTC), oldest first.
    pub minutes: Vec<String>,
    /// Per agent (kebab-case name): `requests`, `errors` and `alerts`, one value per minute.
    pub agents: BTreeMap<String, AgentSeries>,
    /// Who kept the counts: this process since it started (each Lambda instance keeps its own).
    pub kept_by: String,
}

/// One agent's counts per minute.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentSeries {
    pub requests: Vec<u32>,
    pub errors: Vec<u32>,
    pub alerts: Vec<u32>,
}

impl History {
    /// Adds `n` to one agent's count of `what` in the minute of `at_ms`.
    pub fn add(&self, kind: AgentKind, what: Counted, n: u32, at_ms: i64) {
        let minute = at_ms.div_euclid(MINUTE_MS);
        let agent = AgentKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is in ALL");
        let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        if minutes.back().is_none_or(|last| last.minute < minute) {
            minutes.push_back(Minute {
                minute,
                counts: [[0; 3]; 10],
            });
        }
        // A count may arrive a little late (a request that started in the previous minute).
        if let Some(bucket) = minutes.iter_mut().rev().find(|b| b.minute == minute) {
            bucket.counts[agent][what as usize] += n;
        }
        let newest = minutes.back().map_or(minute, |b| b.minute);
        while minutes
            .front()
            .is_some_and(|b| b.minute <= newest - HISTORY_MINUTES as i64)
        {
            minutes.pop_front();
        }
    }

    /// The last `minutes` minutes up to the one of `now_ms` (at most [`HISTORY_MINUTES`]).
    pub fn window(&self, now_ms: i64, minutes: usize) -> HistoryWindow {
        let span = minutes.clamp(1, HISTORY_MINUTES);
        let last = now_ms.div_euclid(MINUTE_MS);
        let first = last - span as i64 + 1;
        let mut agents: Vec<[Vec<u32>; 3]> = (0..AgentKind::ALL.len())
            .map(|_| [vec![0; span], vec![0; span], vec![0; span]])
            .collect();
        for bucket in self
            .minutes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|b| (first..=last).contains(&b.minute))
        {
            let at = (bucket.minute - first) as usize;
            for (series, counts) in agents.iter_mut().zip(&bucket.counts) {
                for (values, count) in series.iter_mut().zip(counts) {
                    values[at] = *count;
                }
            }
        }
        HistoryWindow {
            bucket_seconds: 60,
            minutes: (first..=last).map(|m| iso8601_ms(m * MINUTE_MS)).collect(),
            agents: AgentKind::ALL
                .iter()
                .zip(agents)
                .map(|(kind, [requests, errors, alerts])| {
                    let series = AgentSeries {
                        requests,
                        errors,
                        alerts,
                    };
                    (kind.cli_name().to_string(), series)
                })
                .collect(),
            kept_by: "this process, since it started".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z, a whole minute

    #[test]
    fn counts_land_in_their_minute_and_empty_minutes_are_zero() {
        let h = History::default();
        let threat = AgentKind::ThreatIntelligence;
        h.add(threat, Counted::Request, 1, T0 + 5_000);
        h.add(threat, Counted::Request, 1, T0 + 59_999);
        h.add(threat, Counted::Alert, 2, T0 + 10_000);
        h.add(
            AgentKind::Compliance,
            Counted::Request,
            1,
            T0 + 2 * MINUTE_MS,
        );
        h.add(
            AgentKind::Compliance,
            Counted::Error,
            1,
            T0 + 2 * MINUTE_MS + 1,
        );
        // Late: a count for the first minute after the third one exists.
        h.add(threat, Counted::Request, 1, T0 + 30_000);

        let w = h.window(T0 + 2 * MINUTE_MS + 30_000, 4);
        assert_eq!(w.minutes.len(), 4);
        assert_eq!(w.minutes[1], "2025-11-24T16:00:00.000Z");
        let t = &w.agents["threat-intelligence"];
        assert_eq!(t.requests, vec![0, 3, 0, 0]);
        assert_eq!(t.alerts, vec![0, 2, 0, 0]);
        let c = &w.agents["compliance"];
        assert_eq!(
            (c.requests.clone(), c.errors.clone()),
            (vec![0, 0, 0, 1], vec![0, 0, 0, 1])
        );
        assert_eq!(w.agents.len(), 10);
    }

    #[test]
    fn only_the_last_day_is_kept() {
        let h = History::default();
        let kind = AgentKind::AnomalyDetection;
        h.add(kind, Counted::Request, 7, T0);
        h.add(
            kind,
            Counted::Request,
            1,
            T0 + (HISTORY_MINUTES as i64 - 1) * MINUTE_MS,
        );
        let day = h.window(
            T0 + (HISTORY_MINUTES as i64 - 1) * MINUTE_MS,
            HISTORY_MINUTES,
        );
        assert_eq!(
            day.agents["anomaly-detection"].requests.iter().sum::<u32>(),
            8
        );
        h.add(
            kind,
            Counted::Request,
            1,
            T0 + HISTORY_MINUTES as i64 * MINUTE_MS,
        );
        assert_eq!(
            h.minutes.lock().unwrap().len(),
            2,
            "the first minute is dropped"
        );
        let later = h.window(T0 + HISTORY_MINUTES as i64 * MINUTE_MS, 10_000);
        assert_eq!(later.minutes.len(), HISTORY_MINUTES);
        assert_eq!(
            later.agents["anomaly-detection"]
                .requests
                .iter()
                .sum::<u32>(),
            2
        );
    }
}
