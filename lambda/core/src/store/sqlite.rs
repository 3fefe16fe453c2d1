//! The embedded state store: one SQLite file (bundled library, no server), WAL journal with
//! `synchronous=FULL`, so a write that returned survives a killed process or a power cut.
//! The schema is versioned with `PRAGMA user_version`; migrations run in order at open.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mesh_agents::user_state::{Document, UserState, UserStateError};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    iso8601_ms, AgentResult, AgentStateRecord, ConnectionRecord, Event, EventLog, ListFilter,
    NetworkMetric, NewEvent, ResultRows, StateStore, StoreError, ThreatEvent,
};

/// Schema migrations, in order: migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: the tables of the original AWS plan, plus the event log.
    "CREATE TABLE agent_results (
         result_id    TEXT PRIMARY KEY,
         agent        TEXT NOT NULL,
         timestamp_ms INTEGER NOT NULL,
         model_used   TEXT NOT NULL,
         data         TEXT NOT NULL
     );
     CREATE INDEX agent_results_by_agent_time ON agent_results (agent, timestamp_ms);
     CREATE INDEX agent_results_by_time ON agent_results (timestamp_ms);
     CREATE TABLE agent_state (
         agent        TEXT NOT NULL,
         timestamp_ms INTEGER NOT NULL,
         state        TEXT NOT NULL,
         seq          INTEGER PRIMARY KEY AUTOINCREMENT
     );
     CREATE INDEX agent_state_by_agent ON agent_state (agent, seq);
     CREATE TABLE threat_events (
         threat_id    TEXT PRIMARY KEY,
         timestamp_ms INTEGER NOT NULL,
         severity     TEXT NOT NULL,
         threat_type  TEXT NOT NULL,
         confidence   REAL NOT NULL,
         model_used   TEXT NOT NULL
     );
     CREATE INDEX threat_events_by_severity_time ON threat_events (severity, timestamp_ms);
     CREATE INDEX threat_events_by_time ON threat_events (timestamp_ms);
     CREATE TABLE network_intelligence (
         msp_id       TEXT NOT NULL,
         metric_type  TEXT NOT NULL,
         value        REAL NOT NULL,
         timestamp_ms INTEGER NOT NULL,
         source       TEXT NOT NULL,
         PRIMARY KEY (msp_id, metric_type)
     );
     CREATE TABLE websocket_connections (
         connection_id   TEXT PRIMARY KEY,
         connected_at_ms INTEGER NOT NULL,
         filters         TEXT NOT NULL
     );
     CREATE TABLE events (
         offset       INTEGER PRIMARY KEY AUTOINCREMENT,
         type         TEXT NOT NULL,
         agent        TEXT NOT NULL,
         result_id    TEXT NOT NULL,
         data         TEXT NOT NULL,
         timestamp_ms INTEGER NOT NULL
     );",
    // v2: what users give the agents (partners, trained models, federated runs) and the
    // additive ledgers (the privacy budget), shared by every process on this file.
    "CREATE TABLE user_documents (
         key     TEXT PRIMARY KEY,
         version INTEGER NOT NULL,
         body    BLOB NOT NULL
     );
     CREATE TABLE user_ledgers (
         name  TEXT PRIMARY KEY,
         total REAL NOT NULL
     );",
];

/// The SQLite state store and event log.
pub struct SqliteStore {
    connection: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating the file and its folder when missing) and migrates the database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let connection = Connection::open(path)?;
        Self::configure(connection, path.to_path_buf())
    }

    /// A private in-memory database (tests, `--state-db :memory:`).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::configure(Connection::open_in_memory()?, PathBuf::from(":memory:"))
    }

    fn configure(mut connection: Connection, path: PathBuf) -> Result<Self, StoreError> {
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (every write is a
        // transaction), so a poisoned lock is still usable.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs the migrations the database has not seen, each in its own transaction.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn json_column(row: &Row<'_>, index: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn result_from_row(row: &Row<'_>) -> rusqlite::Result<AgentResult> {
    let timestamp_ms: i64 = row.get(2)?;
    Ok(AgentResult {
        result_id: row.get(0)?,
        agent: row.get(1)?,
        timestamp_ms,
        timestamp: iso8601_ms(timestamp_ms),
        model_used: row.get(3)?,
        data: json_column(row, 4)?,
    })
}

fn threat_from_row(row: &Row<'_>) -> rusqlite::Result<ThreatEvent> {
    let timestamp_ms: i64 = row.get(1)?;
    Ok(ThreatEvent {
        threat_id: row.get(0)?,
        timestamp_ms,
        timestamp: iso8601_ms(timestamp_ms),
        severity: row.get(2)?,
        threat_type: row.get(3)?,
        confidence: row.get(4)?,
        model_used: row.get(5)?,
    })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        offset: row.get(0)?,
        event_type: row.get(1)?,
        agent: row.get(2)?,
        result_id: row.get(3)?,
        data: json_column(row, 4)?,
        timestamp: iso8601_ms(row.get(5)?),
    })
}

/// `(lower, upper)` time bounds of a filter, open ends as the extreme values.
fn time_bounds(filter: &ListFilter) -> (i64, i64) {
    (
        filter.since_ms.unwrap_or(i64::MIN),
        filter.until_ms.unwrap_or(i64::MAX),
    )
}

/// Inserts a new result; [`StoreError::AlreadyStored`] when its `result_id` is taken.
fn insert_result(connection: &Connection, result: &AgentResult) -> Result<(), StoreError> {
    let data = serde_json::to_string(&result.data)?;
    connection
        .execute(
            "INSERT INTO agent_results (result_id, agent, timestamp_ms, model_used, data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                result.result_id,
                result.agent,
                result.timestamp_ms,
                result.model_used,
                data
            ],
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => {
                StoreError::AlreadyStored(result.result_id.clone())
            }
            _ => e.into(),
        })?;
    Ok(())
}

fn upsert_threat(connection: &Connection, threat: &ThreatEvent) -> Result<(), StoreError> {
    connection.execute(
        "INSERT OR REPLACE INTO threat_events
         (threat_id, timestamp_ms, severity, threat_type, confidence, model_used)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            threat.threat_id,
            threat.timestamp_ms,
            threat.severity,
            threat.threat_type,
            threat.confidence,
            threat.model_used
        ],
    )?;
    Ok(())
}

fn upsert_network_metrics(
    connection: &Connection,
    metrics: &[NetworkMetric],
) -> Result<(), StoreError> {
    for m in metrics {
        connection.execute(
            "INSERT OR REPLACE INTO network_intelligence
             (msp_id, metric_type, value, timestamp_ms, source) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![m.msp_id, m.metric_type, m.value, m.timestamp_ms, m.source],
        )?;
    }
    Ok(())
}

/// Appends events (inside the caller's transaction); returns them with their offsets.
fn insert_events(connection: &Connection, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
    let mut appended = Vec::with_capacity(events.len());
    for e in events {
        let data = serde_json::to_string(&e.data)?;
        connection.execute(
            "INSERT INTO events (type, agent, result_id, data, timestamp_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.event_type, e.agent, e.result_id, data, e.timestamp_ms],
        )?;
        appended.push(Event {
            offset: connection.last_insert_rowid(),
            event_type: e.event_type.clone(),
            agent: e.agent.clone(),
            result_id: e.result_id.clone(),
            data: e.data.clone(),
            timestamp: iso8601_ms(e.timestamp_ms),
        });
    }
    Ok(appended)
}

impl StateStore for SqliteStore {
    fn durability(&self) -> serde_json::Value {
        let connection = self.lock();
        let pragma = |name: &str| {
            connection
                .query_row(&format!("PRAGMA {name}"), [], |row| {
                    row.get::<_, PragmaText>(0)
                })
                .map(|v| v.0)
                .unwrap_or_else(|e| format!("unknown ({e})"))
        };
        let synchronous = match pragma("synchronous").as_str() {
            "0" => "off".to_string(),
            "1" => "normal".to_string(),
            "2" => "full".to_string(),
            "3" => "extra".to_string(),
            other => other.to_string(),
        };
        serde_json::json!({
            "backend": "sqlite",
            "journal_mode": pragma("journal_mode").to_ascii_lowercase(),
            "synchronous": synchronous,
        })
    }

    fn put_result(&self, result: &AgentResult) -> Result<(), StoreError> {
        insert_result(&self.lock(), result)
    }

    fn get_result(&self, result_id: &str) -> Result<Option<AgentResult>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT result_id, agent, timestamp_ms, model_used, data
                 FROM agent_results WHERE result_id = ?1",
                [result_id],
                result_from_row,
            )
            .optional()?)
    }

    fn list_results(&self, filter: &ListFilter) -> Result<Vec<AgentResult>, StoreError> {
        let (since, until) = time_bounds(filter);
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT result_id, agent, timestamp_ms, model_used, data FROM agent_results
             WHERE (?1 IS NULL OR agent = ?1) AND timestamp_ms >= ?2 AND timestamp_ms < ?3
             ORDER BY timestamp_ms DESC, result_id DESC LIMIT ?4",
        )?;
        let rows = statement.query_map(
            params![filter.agent, since, until, filter.limit()],
            result_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn last_activity(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT agent, MAX(timestamp_ms) FROM agent_results GROUP BY agent")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_agent_state(&self, record: &AgentStateRecord) -> Result<(), StoreError> {
        let state = serde_json::to_string(&record.state)?;
        self.lock().execute(
            "INSERT INTO agent_state (agent, timestamp_ms, state) VALUES (?1, ?2, ?3)",
            params![record.agent, record.timestamp_ms, state],
        )?;
        Ok(())
    }

    fn latest_agent_states(&self) -> Result<Vec<AgentStateRecord>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT agent, timestamp_ms, state FROM agent_state
             WHERE seq IN (SELECT MAX(seq) FROM agent_state GROUP BY agent) ORDER BY agent",
        )?;
        let rows = statement.query_map([], |r| {
            let timestamp_ms: i64 = r.get(1)?;
            Ok(AgentStateRecord {
                agent: r.get(0)?,
                timestamp_ms,
                timestamp: iso8601_ms(timestamp_ms),
                state: json_column(r, 2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_threat(&self, threat: &ThreatEvent) -> Result<(), StoreError> {
        upsert_threat(&self.lock(), threat)
    }

    fn list_threats(&self, filter: &ListFilter) -> Result<Vec<ThreatEvent>, StoreError> {
        let (since, until) = time_bounds(filter);
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT threat_id, timestamp_ms, severity, threat_type, confidence, model_used
             FROM threat_events
             WHERE (?1 IS NULL OR severity = ?1) AND timestamp_ms >= ?2 AND timestamp_ms < ?3
             ORDER BY timestamp_ms DESC, threat_id DESC LIMIT ?4",
        )?;
        let severity = filter.severity.as_ref().map(|s| s.to_ascii_uppercase());
        let rows = statement.query_map(
            params![severity, since, until, filter.limit()],
            threat_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_network_metrics(&self, metrics: &[NetworkMetric]) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        upsert_network_metrics(&tx, metrics)?;
        tx.commit()?;
        Ok(())
    }

    fn list_network_metrics(&self, msp_id: Option<&str>) -> Result<Vec<NetworkMetric>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT msp_id, metric_type, value, timestamp_ms, source FROM network_intelligence
             WHERE (?1 IS NULL OR msp_id = ?1) ORDER BY msp_id, metric_type",
        )?;
        let rows = statement.query_map([msp_id], |r| {
            Ok(NetworkMetric {
                msp_id: r.get(0)?,
                metric_type: r.get(1)?,
                value: r.get(2)?,
                timestamp_ms: r.get(3)?,
                source: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_connection(&self, connection: &ConnectionRecord) -> Result<(), StoreError> {
        let filters = serde_json::to_string(&connection.filters)?;
        self.lock().execute(
            "INSERT OR REPLACE INTO websocket_connections (connection_id, connected_at_ms, filters)
             VALUES (?1, ?2, ?3)",
            params![
                connection.connection_id,
                connection.connected_at_ms,
                filters
            ],
        )?;
        Ok(())
    }

    fn remove_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.lock().execute(
            "DELETE FROM websocket_connections WHERE connection_id = ?1",
            [connection_id],
        )?;
        Ok(())
    }

    fn list_connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT connection_id, connected_at_ms, filters FROM websocket_connections
             ORDER BY connected_at_ms",
        )?;
        let rows = statement.query_map([], |r| {
            Ok(ConnectionRecord {
                connection_id: r.get(0)?,
                connected_at_ms: r.get(1)?,
                filters: json_column(r, 2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn get_connection(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT connection_id, connected_at_ms, filters FROM websocket_connections
                 WHERE connection_id = ?1",
                params![connection_id],
                |r| {
                    Ok(ConnectionRecord {
                        connection_id: r.get(0)?,
                        connected_at_ms: r.get(1)?,
                        filters: json_column(r, 2)?,
                    })
                },
            )
            .optional()?)
    }

    fn clear_connections(&self) -> Result<(), StoreError> {
        self.lock()
            .execute("DELETE FROM websocket_connections", [])?;
        Ok(())
    }
}

impl EventLog for SqliteStore {
    fn append(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        let appended = insert_events(&tx, events)?;
        tx.commit()?;
        Ok(appended)
    }

    fn record(&self, rows: &ResultRows, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        let mut connection = self.lock();
        // Dropped without commit on any error: the transaction rolls back.
        let tx = connection.transaction()?;
        insert_result(&tx, &rows.result)?;
        if let Some(threat) = &rows.threat {
            upsert_threat(&tx, threat)?;
        }
        upsert_network_metrics(&tx, &rows.network)?;
        let appended = insert_events(&tx, events)?;
        tx.commit()?;
        Ok(appended)
    }

    fn read_from(&self, from: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT offset, type, agent, result_id, data, timestamp_ms FROM events
             WHERE offset >= ?1 ORDER BY offset LIMIT ?2",
        )?;
        let rows = statement.query_map(params![from, limit], event_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn read_newest(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT offset, type, agent, result_id, data, timestamp_ms FROM events
             ORDER BY offset DESC LIMIT ?1",
        )?;
        let rows = statement.query_map(params![limit], event_from_row)?;
        let mut events: Vec<Event> = rows.collect::<Result<_, _>>()?;
        events.reverse();
        Ok(events)
    }
}

impl UserState for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<Document>, UserStateError> {
        let connection = self.lock();
        connection
            .query_row(
                "SELECT version, body FROM user_documents WHERE key = ?1",
                params![key],
                |r| {
                    Ok(Document {
                        version: r.get::<_, i64>(0)? as u64,
                        bytes: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(user_state_error)
    }

    fn put(&self, key: &str, bytes: &[u8], expected: u64) -> Result<bool, UserStateError> {
        let connection = self.lock();
        let changed = if expected == 0 {
            connection.execute(
                "INSERT INTO user_documents (key, version, body) VALUES (?1, 1, ?2)
                 ON CONFLICT (key) DO NOTHING",
                params![key, bytes],
            )
        } else {
            connection.execute(
                "UPDATE user_documents SET version = version + 1, body = ?2
                 WHERE key = ?1 AND version = ?3",
                params![key, bytes, expected as i64],
            )
        }
        .map_err(user_state_error)?;
        Ok(changed == 1)
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, UserStateError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT key FROM user_documents WHERE substr(key, 1, ?2) = ?1 ORDER BY key",
            )
            .map_err(user_state_error)?;
        let rows = statement
            .query_map(params![prefix, prefix.chars().count() as i64], |r| r.get(0))
            .map_err(user_state_error)?;
        rows.collect::<Result<_, _>>().map_err(user_state_error)
    }

    fn delete(&self, key: &str) -> Result<(), UserStateError> {
        self.lock()
            .execute("DELETE FROM user_documents WHERE key = ?1", params![key])
            .map_err(user_state_error)?;
        Ok(())
    }

    fn add(&self, name: &str, amount: f64) -> Result<f64, UserStateError> {
        self.lock()
            .query_row(
                "INSERT INTO user_ledgers (name, total) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET total = total + excluded.total
                 RETURNING total",
                params![name, amount],
                |r| r.get(0),
            )
            .map_err(user_state_error)
    }

    fn total(&self, name: &str) -> Result<f64, UserStateError> {
        self.lock()
            .query_row(
                "SELECT total FROM user_ledgers WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map(|t| t.unwrap_or(0.0))
            .map_err(user_state_error)
    }
}

fn user_state_error(e: rusqlite::Error) -> UserStateError {
    UserStateError::Store(e.to_string())
}

/// A PRAGMA's value as text, whether SQLite gives it as text or a number.
struct PragmaText(String);

impl rusqlite::types::FromSql for PragmaText {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Ok(Self(match value {
            rusqlite::types::ValueRef::Integer(i) => i.to_string(),
            rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("{other:?}"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_state_keeps_the_contract_and_is_shared_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = SqliteStore::open(&path).unwrap();
        mesh_agents::user_state::check_contract(&store);
        let other = SqliteStore::open(&path).unwrap();
        assert_eq!(other.get("a/1").unwrap().unwrap().bytes, b"two");
        assert_eq!(other.add("eps", 0.25).unwrap(), 1.0);
        assert_eq!(store.total("eps").unwrap(), 1.0);
    }

    fn result(id: &str, agent: &str, ms: i64) -> AgentResult {
        AgentResult {
            result_id: id.into(),
            agent: agent.into(),
            timestamp_ms: ms,
            timestamp: iso8601_ms(ms),
            model_used: "m@1".into(),
            data: json!({"value": ms}),
        }
    }

    #[test]
    fn results_round_trip_and_filter() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .put_result(&result("a", "anomaly-detection", 10))
            .unwrap();
        store
            .put_result(&result("b", "anomaly-detection", 20))
            .unwrap();
        store.put_result(&result("c", "client-health", 30)).unwrap();
        assert_eq!(
            store.get_result("b").unwrap(),
            Some(result("b", "anomaly-detection", 20))
        );
        assert_eq!(store.get_result("zz").unwrap(), None);
        let ids = |f: &ListFilter| -> Vec<String> {
            store
                .list_results(f)
                .unwrap()
                .into_iter()
                .map(|r| r.result_id)
                .collect()
        };
        assert_eq!(ids(&ListFilter::default()), ["c", "b", "a"]);
        let anomaly = ListFilter {
            agent: Some("anomaly-detection".into()),
            ..Default::default()
        };
        assert_eq!(ids(&anomaly), ["b", "a"]);
        let window = ListFilter {
            since_ms: Some(20),
            until_ms: Some(30),
            ..Default::default()
        };
        assert_eq!(ids(&window), ["b"]);
        let mut last = store.last_activity().unwrap();
        last.sort();
        assert_eq!(
            last,
            [
                ("anomaly-detection".to_string(), 20),
                ("client-health".to_string(), 30)
            ]
        );
        // A result id is stored once.
        assert!(store
            .put_result(&result("a", "anomaly-detection", 40))
            .is_err());
    }

    #[test]
    fn threats_by_severity_and_time() {
        let store = SqliteStore::in_memory().unwrap();
        for (id, severity, ms) in [("t1", "HIGH", 1), ("t2", "LOW", 2), ("t3", "HIGH", 3)] {
            store
                .put_threat(&ThreatEvent {
                    threat_id: id.into(),
                    timestamp_ms: ms,
                    timestamp: iso8601_ms(ms),
                    severity: severity.into(),
                    threat_type: "malware".into(),
                    confidence: 0.9,
                    model_used: "m@1".into(),
                })
                .unwrap();
        }
        let high = ListFilter {
            severity: Some("high".into()),
            since_ms: Some(2),
            ..Default::default()
        };
        let found: Vec<_> = store
            .list_threats(&high)
            .unwrap()
            .into_iter()
            .map(|t| t.threat_id)
            .collect();
        assert_eq!(found, ["t3"]);
    }

    /// A threat answer's rows (result, threat, one network metric) and its two events.
    fn threat_answer(id: &str, severity: &str) -> (ResultRows, Vec<NewEvent>) {
        let mut rows = ResultRows::new("threat-intelligence", id, "m@1", json!({"s": severity}));
        let ms = rows.result.timestamp_ms;
        rows.threat = Some(ThreatEvent {
            threat_id: id.into(),
            timestamp_ms: ms,
            timestamp: iso8601_ms(ms),
            severity: severity.into(),
            threat_type: "ransomware".into(),
            confidence: 0.9,
            model_used: "m@1".into(),
        });
        rows.network = vec![NetworkMetric {
            msp_id: "mesh".into(),
            metric_type: "threats".into(),
            value: 1.0,
            timestamp_ms: ms,
            source: id.into(),
        }];
        let event = |event_type: &str| NewEvent {
            event_type: event_type.into(),
            agent: "threat-intelligence".into(),
            result_id: id.into(),
            data: json!({"severity": severity}),
            timestamp_ms: ms,
        };
        (rows, vec![event("agent_result"), event("alert")])
    }

    /// A failed event write stores none of the answer; a second answer under a stored
    /// `result_id` stores nothing of its own (no second event, the threat unchanged).
    #[test]
    fn a_result_its_threat_and_its_events_are_stored_together_or_not_at_all() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .lock()
            .execute_batch(
                "CREATE TRIGGER refuse_events BEFORE INSERT ON events
                 BEGIN SELECT RAISE(ABORT, 'the event log is full'); END;",
            )
            .unwrap();
        let (rows, events) = threat_answer("r1", "HIGH");
        let refused = store.record(&rows, &events);
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(store.get_result("r1").unwrap(), None);
        assert!(store
            .list_threats(&ListFilter::default())
            .unwrap()
            .is_empty());
        assert!(store.list_network_metrics(None).unwrap().is_empty());

        store
            .lock()
            .execute_batch("DROP TRIGGER refuse_events")
            .unwrap();
        let appended = store.record(&rows, &events).unwrap();
        assert_eq!(
            appended.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(store.get_result("r1").unwrap(), Some(rows.result.clone()));
        assert_eq!(
            store.list_threats(&ListFilter::default()).unwrap(),
            vec![rows.threat.clone().unwrap()]
        );
        assert_eq!(store.list_network_metrics(None).unwrap(), rows.network);

        let (again, more) = threat_answer("r1", "CRITICAL");
        let duplicate = store.record(&again, &more);
        assert!(
            matches!(duplicate, Err(StoreError::AlreadyStored(ref id)) if id == "r1"),
            "{duplicate:?}"
        );
        assert_eq!(store.read_from(1, 100).unwrap(), appended);
        assert_eq!(
            store.list_threats(&ListFilter::default()).unwrap()[0].severity,
            "HIGH"
        );
    }

    #[test]
    fn events_get_increasing_offsets_and_replay_from_any() {
        let store = SqliteStore::in_memory().unwrap();
        let event = |n: i64| NewEvent {
            event_type: "agent_result".into(),
            agent: "x".into(),
            result_id: format!("r{n}"),
            data: json!({"n": n}),
            timestamp_ms: n,
        };
        let first = store.append(&[event(1), event(2)]).unwrap();
        let second = store.append(&[event(3)]).unwrap();
        assert_eq!(
            [first[0].offset, first[1].offset, second[0].offset],
            [1, 2, 3]
        );
        let replay: Vec<_> = store
            .read_from(2, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.result_id)
            .collect();
        assert_eq!(replay, ["r2", "r3"]);
        assert_eq!(store.read_from(2, 1).unwrap().len(), 1);
        let newest = |limit| -> Vec<i64> {
            let events = store.read_newest(limit).unwrap();
            events.into_iter().map(|e| e.offset).collect()
        };
        assert_eq!(newest(2), [2, 3]);
        assert_eq!(newest(10), [1, 2, 3]);
    }

    #[test]
    fn state_network_and_connections() {
        let store = SqliteStore::in_memory().unwrap();
        for (n, loaded) in [(1, true), (2, false)] {
            store
                .put_agent_state(&AgentStateRecord {
                    agent: "threat-intelligence".into(),
                    timestamp_ms: n,
                    timestamp: iso8601_ms(n),
                    state: json!({"loaded": loaded}),
                })
                .unwrap();
        }
        let states = store.latest_agent_states().unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].state, json!({"loaded": false}));

        let metric = |v: f64| NetworkMetric {
            msp_id: "msp-1".into(),
            metric_type: "records".into(),
            value: v,
            timestamp_ms: 1,
            source: "run".into(),
        };
        store.put_network_metrics(&[metric(5.0)]).unwrap();
        store.put_network_metrics(&[metric(7.0)]).unwrap();
        let metrics = store.list_network_metrics(Some("msp-1")).unwrap();
        assert_eq!(metrics, [metric(7.0)]);

        let connection = ConnectionRecord {
            connection_id: "c1".into(),
            connected_at_ms: 1,
            filters: json!({}),
        };
        store.put_connection(&connection).unwrap();
        assert_eq!(store.list_connections().unwrap(), [connection]);
        store.remove_connection("c1").unwrap();
        assert!(store.list_connections().unwrap().is_empty());
    }

    #[test]
    fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/mesh.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.put_result(&result("kept", "compliance", 5)).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert!(store.get_result("kept").unwrap().is_some());
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
