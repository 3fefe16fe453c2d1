//! The mesh's state behind one trait: agent results, agent state, threat events, network
//! intelligence, WebSocket connections and the event log (the tables of the original AWS
//! plan). Embedded by default ([`sqlite::SqliteStore`]); [`dynamo::DynamoStore`] keeps the
//! same tables in DynamoDB.

#[cfg(feature = "aws")]
pub mod dynamo;
pub mod sqlite;
pub mod tables;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "aws")]
pub use dynamo::DynamoStore;
pub use sqlite::SqliteStore;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store: stored JSON is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error("state store: {0}")]
    Io(#[from] std::io::Error),
    #[error("state store: database schema v{found} is newer than this build knows (v{known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("state store: worker thread failed: {0}")]
    Worker(String),
    #[error("state store: DynamoDB: {0}")]
    Aws(String),
    /// A result too large for the store as configured (DynamoDB without a results location).
    #[error("state store: {0}")]
    TooLarge(String),
    /// A result is stored under this `result_id` already (a concurrent retry stored it first);
    /// nothing of the second one was written.
    #[error("state store: a result is stored under `{0}` already")]
    AlreadyStored(String),
}

/// One agent call's answer, stored under its `result_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentResult {
    pub result_id: String,
    /// Agent name (kebab-case, as `msp-mesh score --agent`).
    pub agent: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// ISO 8601 UTC.
    pub timestamp: String,
    pub model_used: String,
    /// The response body as returned to the caller.
    pub data: Value,
}

/// A snapshot of one agent's state (loaded or not, which model, what changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentStateRecord {
    pub agent: String,
    pub timestamp_ms: i64,
    pub timestamp: String,
    pub state: Value,
}

/// A detected threat, queryable by severity and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThreatEvent {
    /// The `result_id` of the threat-intelligence call that found it.
    pub threat_id: String,
    pub timestamp_ms: i64,
    pub timestamp: String,
    /// LOW, MEDIUM, HIGH or CRITICAL.
    pub severity: String,
    pub threat_type: String,
    pub confidence: f64,
    pub model_used: String,
}

/// One metric of one MSP in the network (e.g. a federated participant's record count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkMetric {
    pub msp_id: String,
    pub metric_type: String,
    pub value: f64,
    pub timestamp_ms: i64,
    /// Where the value comes from (e.g. the federated run's `result_id`).
    pub source: String,
}

/// Everything one answer stores: the result, the threat it reports and its network metrics.
/// [`EventLog::record`] writes them with the answer's events in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRows {
    pub result: AgentResult,
    pub threat: Option<ThreatEvent>,
    pub network: Vec<NetworkMetric>,
}

impl ResultRows {
    /// A result stored now under `result_id`, with no threat or network rows.
    pub fn new(agent: &str, result_id: &str, model_used: &str, data: Value) -> Self {
        let timestamp_ms = now_ms();
        Self {
            result: AgentResult {
                result_id: result_id.to_string(),
                agent: agent.to_string(),
                timestamp_ms,
                timestamp: iso8601_ms(timestamp_ms),
                model_used: model_used.to_string(),
                data,
            },
            threat: None,
            network: vec![],
        }
    }
}

/// A live WebSocket connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectionRecord {
    pub connection_id: String,
    pub connected_at_ms: i64,
    /// The event filters of the connection's latest `subscribe` (JSON).
    pub filters: Value,
}

/// An event not yet in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// `agent_result` or `alert`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub agent: String,
    pub result_id: String,
    pub data: Value,
    pub timestamp_ms: i64,
}

/// An event in the log, with its offset (1, 2, 3, ... in publication order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub offset: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub agent: String,
    pub result_id: String,
    pub data: Value,
    /// ISO 8601 UTC.
    pub timestamp: String,
}

/// Filter of a listing; `None` means no bound.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListFilter {
    /// Only this agent (results) or this severity (threats).
    pub agent: Option<String>,
    pub severity: Option<String>,
    /// Inclusive lower bound, milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, milliseconds since the epoch.
    pub until_ms: Option<i64>,
    /// At most this many, newest first (default 100, at most 1,000).
    pub limit: Option<u32>,
}

impl ListFilter {
    /// The effective row limit.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

/// The tables of the mesh. Every write is durable when the call returns.
pub trait StateStore: Send + Sync + 'static {
    /// How writes are made durable, for `/health`: the backend and, for SQLite, the journal
    /// mode and synchronous level the live connection reports.
    fn durability(&self) -> serde_json::Value;
    /// Stores one agent result.
    fn put_result(&self, result: &AgentResult) -> Result<(), StoreError>;
    fn get_result(&self, result_id: &str) -> Result<Option<AgentResult>, StoreError>;
    /// Results newest first (filters: `agent`, `since_ms`, `until_ms`, `limit`).
    fn list_results(&self, filter: &ListFilter) -> Result<Vec<AgentResult>, StoreError>;
    /// Time of the newest result of each agent that has one.
    fn last_activity(&self) -> Result<Vec<(String, i64)>, StoreError>;

    fn put_agent_state(&self, record: &AgentStateRecord) -> Result<(), StoreError>;
    /// The newest state of every agent.
    fn latest_agent_states(&self) -> Result<Vec<AgentStateRecord>, StoreError>;

    fn put_threat(&self, threat: &ThreatEvent) -> Result<(), StoreError>;
    /// Threats newest first (filters: `severity`, `since_ms`, `until_ms`, `limit`).
    fn list_threats(&self, filter: &ListFilter) -> Result<Vec<ThreatEvent>, StoreError>;

    /// Inserts or replaces the metric (`msp_id`, `metric_type`).
    fn put_network_metrics(&self, metrics: &[NetworkMetric]) -> Result<(), StoreError>;
    fn list_network_metrics(&self, msp_id: Option<&str>) -> Result<Vec<NetworkMetric>, StoreError>;

    fn put_connection(&self, connection: &ConnectionRecord) -> Result<(), StoreError>;
    fn remove_connection(&self, connection_id: &str) -> Result<(), StoreError>;
    fn list_connections(&self) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// One connection by id (its filters), without reading the others.
    fn get_connection(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Forgets every connection (at start-up: those of a previous process are gone).
    fn clear_connections(&self) -> Result<(), StoreError>;
}

/// The persisted, ordered event log.
pub trait EventLog: Send + Sync + 'static {
    /// Appends the events in one durable write; returns them with their offsets.
    fn append(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError>;
    /// Stores an answer's rows and appends its events in one transaction: all of them are
    /// stored or none is ([`StoreError::AlreadyStored`] when its `result_id` is taken).
    /// Returns the events with their offsets.
    fn record(&self, rows: &ResultRows, events: &[NewEvent]) -> Result<Vec<Event>, StoreError>;
    /// Events with `offset >= from`, oldest first, at most `limit`.
    fn read_from(&self, from: i64, limit: u32) -> Result<Vec<Event>, StoreError>;
    /// The newest `limit` events, oldest first.
    fn read_newest(&self, limit: u32) -> Result<Vec<Event>, StoreError>;
}

/// Runs a blocking store call on tokio's blocking pool (SQLite calls block on disk).
pub async fn off_thread<S, T>(
    store: &std::sync::Arc<S>,
    call: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
{
    let store = std::sync::Arc::clone(store);
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// ISO 8601 UTC of a millisecond timestamp.
pub fn iso8601_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses a time bound: milliseconds since the epoch, or ISO 8601 / RFC 3339.
pub fn parse_time_bound(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(text)
        .or_else(|_| humantime::parse_rfc3339(text))
        .ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// A new, time-ordered result id (UUID v7).
pub fn new_result_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
