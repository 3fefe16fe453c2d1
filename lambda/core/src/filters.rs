//! A live-event connection's filters and the messages it is sent: shared by the local
//! `GET /ws`, the API Gateway WebSocket API and the broadcaster that pushes to its connections.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::store::Event;

/// The event filters of a connection; empty sets match everything.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filters {
    /// Event types wanted (`agent_result`, `alert`).
    pub event_types: BTreeSet<String>,
    /// Agents wanted (kebab-case names).
    pub agents: BTreeSet<String>,
    /// After `unsubscribe`: nothing is sent.
    pub paused: bool,
}

impl Filters {
    /// The filters as stored in a [`ConnectionRecord`] (unreadable parts match everything).
    pub fn from_json(stored: &Value) -> Self {
        Self {
            event_types: names(stored, "event_types").unwrap_or_default(),
            agents: names(stored, "agents").unwrap_or_default(),
            paused: stored["paused"].as_bool().unwrap_or(false),
        }
    }

    /// Whether the connection wants `event`.
    pub fn matches(&self, event: &Event) -> bool {
        !self.paused
            && (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && (self.agents.is_empty() || self.agents.contains(&event.agent))
    }

    /// The filters as stored.
    pub fn to_json(&self) -> Value {
        json!({"event_types": self.event_types, "agents": self.agents, "paused": self.paused})
    }
}

/// Strings of `data[key]` when it is a string or an array of strings; `*` and `all` mean any.
pub fn names(data: &Value, key: &str) -> Result<BTreeSet<String>, String> {
    let values: Vec<&Value> = match data.get(key) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
    };
    let mut set = BTreeSet::new();
    for v in values {
        let s = v
            .as_str()
            .ok_or_else(|| format!("`data.{key}` must be a string or an array of strings"))?;
        if s != "*" && s != "all" {
            set.insert(s.to_string());
        }
    }
    Ok(set)
}

/// A server message `{type, data, timestamp}`.
pub fn message(kind: &str, data: Value) -> String {
    json!({"type": kind, "data": data, "timestamp": mesh_agents::now_iso8601()}).to_string()
}

/// An event as its connection receives it.
pub fn event_message(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_else(|_| "{}".into())
}
