//! The state store on DynamoDB, with the original plan's tables and keys: `AgentResults`
//! (`result_id`, `agent_type`; GSI `agent_type-timestamp-index`), `AgentState` (`agent_id`,
//! `timestamp`), `ThreatEvents` (`threat_id`, `timestamp`; GSI `severity-timestamp-index`),
//! `NetworkIntelligence` (`msp_id`, `metric_type`) and `WebSocketConnections`
//! (`connection_id`, TTL `expires_at`); and the event log `MeshEventLog` (`log`, `offset`),
//! whose offsets come from an atomic counter item, so every function appends to one order. `timestamp` sort keys are ISO 8601 strings (ordered as
//! text), and every JSON number is stored as a DynamoDB number (`N`, its exact decimal text),
//! never as a float or a JSON blob.
//!
//! [`StateStore`] is synchronous (the SQLite store blocks on disk); this store runs its SDK
//! calls on a small runtime of its own and waits for them, so it can be called from any
//! thread, including [`super::off_thread`]'s blocking pool.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use futures_util::future::try_join_all;
use mesh_agents::AgentKind;
use serde_json::{Number, Value};

use mesh_agents::user_state::{Document, UserState, UserStateError};

pub use super::tables::*;
use super::{
    iso8601_ms, AgentResult, AgentStateRecord, ConnectionRecord, Event, EventLog, ListFilter,
    NetworkMetric, NewEvent, ResultRows, StateStore, StoreError, ThreatEvent,
};

/// GSI of `AgentResults` by agent and time.
pub const RESULTS_BY_AGENT_INDEX: &str = "agent_type-timestamp-index";
/// GSI of `ThreatEvents` by severity and time.
pub const THREATS_BY_SEVERITY_INDEX: &str = "severity-timestamp-index";
/// The severities a threat can have (the GSI's partitions).
const SEVERITIES: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
/// API Gateway closes a WebSocket connection after two hours: the TTL of its record.
const CONNECTION_TTL_S: i64 = 2 * 60 * 60;
/// Upper bound of every ISO 8601 time stamp.
const END_OF_TIME: &str = "9999";
/// Tag of a number DynamoDB cannot hold (magnitude beyond 1e125 or below 1e-130).
const OUT_OF_RANGE_NUMBER: &str = "__mesh_number";

/// Largest document body kept in an item (DynamoDB's item limit is 400 KB).
pub const MAX_DOCUMENT_BYTES: usize = 350_000;
/// `log` of the event items.
const EVENTS_PARTITION: &str = "events";
/// `log` of the offset counter item (at `offset` 0).
const COUNTER_PARTITION: &str = "counter";

/// Results and user documents too large for an item, as S3 objects:
/// `<prefix>/results/<result_id>.json` and `<prefix>/documents/<key>@<version>`.
#[derive(Clone)]
struct LargeObjects {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl LargeObjects {
    fn key(&self, name: &str) -> String {
        match self.prefix.is_empty() {
            true => name.to_string(),
            false => format!("{}/{name}", self.prefix),
        }
    }

    async fn put(&self, result_id: &str, body: Vec<u8>) -> Result<String, StoreError> {
        self.put_object(&format!("results/{result_id}.json"), body)
            .await
    }

    /// Stores `body` under `name` (below the prefix); returns its `s3://` URI.
    async fn put_object(&self, name: &str, body: Vec<u8>) -> Result<String, StoreError> {
        let key = self.key(name);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .map_err(|e| {
                StoreError::Aws(format!(
                    "S3 PutObject: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn get(&self, uri: &str) -> Result<Value, StoreError> {
        Ok(serde_json::from_slice(&self.get_object(uri).await?)?)
    }

    /// The bytes of the object at `uri` (one this store wrote).
    async fn get_object(&self, uri: &str) -> Result<Vec<u8>, StoreError> {
        let key = uri
            .strip_prefix(&format!("s3://{}/", self.bucket))
            .ok_or_else(|| StoreError::Aws(format!("{uri} is not in the results location")))?;
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                StoreError::Aws(format!(
                    "S3 GetObject {uri}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Aws(format!("S3 GetObject {uri}: {e}")))?
            .into_bytes();
        Ok(bytes.to_vec())
    }
}

/// Largest answer kept in a result item, in bytes of JSON (DynamoDB's item limit is 400 KB).
pub const MAX_ITEM_RESULT_BYTES: usize = 350_000;
/// The attribute of a result item that points at its answer in S3.
const DATA_S3: &str = "data_s3";

/// The state store on DynamoDB.
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    large_results: Option<LargeObjects>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for DynamoStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks; inside an async context that would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn aws_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Aws(e.to_string())
}

fn sdk_error<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Aws(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

impl DynamoStore {
    /// A store on `tables` through a client built from `config` (region, credentials,
    /// `AWS_ENDPOINT_URL_DYNAMODB`).
    pub fn new(config: &aws_config::SdkConfig, tables: Tables) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dynamodb")
            .enable_all()
            .build()?;
        Ok(Self {
            client: Client::new(config),
            tables,
            large_results: None,
            runtime: Some(runtime),
        })
    }

    /// Keeps answers over [`MAX_ITEM_RESULT_BYTES`] in S3 at `location` (`s3://bucket/prefix`),
    /// their items pointing at them.
    pub fn with_large_results(
        mut self,
        config: &aws_config::SdkConfig,
        location: &str,
    ) -> Result<Self, StoreError> {
        let uri = mesh_inference::aws::S3Uri::parse(location)
            .map_err(|e| StoreError::Aws(format!("results location: {e}")))?;
        self.large_results = Some(LargeObjects {
            client: mesh_inference::aws::s3_client(config),
            bucket: uri.bucket,
            prefix: uri.key,
        });
        Ok(self)
    }

    /// `item` with its answer read back from S3 when it holds a pointer.
    async fn resolve(large: Option<&LargeObjects>, item: &Item) -> Result<AgentResult, StoreError> {
        let Some(AttributeValue::S(uri)) = item.get(DATA_S3) else {
            return result_of(item);
        };
        let large = large.ok_or_else(|| {
            StoreError::TooLarge(format!("result in {uri}, but no results location is set"))
        })?;
        let mut item = item.clone();
        item.insert("data".into(), json_to_attribute(&large.get(uri).await?));
        result_of(&item)
    }

    /// Runs `call` on the store's runtime and waits for it.
    fn run<T, F>(&self, call: impl FnOnce(Client, Tables) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let future = call(self.client.clone(), self.tables.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("runtime until drop")
            .spawn(async move {
                let _ = tx.send(future.await);
            });
        rx.recv()
            .map_err(|_| StoreError::Worker("the DynamoDB task ended without an answer".into()))?
    }

    /// Creates the tables with the plan's keys and indexes, on demand billing (for local
    /// servers and tests; the deployment template creates them on AWS).
    pub fn create_tables(&self) -> Result<(), StoreError> {
        self.run(|client, tables| async move {
            // (table, hash key, range key or "", GSI (name, hash key) on `timestamp`)
            let specs: [TableSpec; 5] = [
                (&tables.agent_state, "agent_id", "timestamp", None),
                (
                    &tables.agent_results,
                    "result_id",
                    "agent_type",
                    Some((RESULTS_BY_AGENT_INDEX, "agent_type")),
                ),
                (&tables.network_intelligence, "msp_id", "metric_type", None),
                (
                    &tables.threat_events,
                    "threat_id",
                    "timestamp",
                    Some((THREATS_BY_SEVERITY_INDEX, "severity")),
                ),
                (&tables.connections, "connection_id", "", None),
            ];
            for (name, hash, range, index) in specs {
                let mut attributes = vec![hash];
                if !range.is_empty() {
                    attributes.push(range);
                }
                let mut request = client
                    .create_table()
                    .table_name(name)
                    .billing_mode(BillingMode::PayPerRequest)
                    .key_schema(key(hash, KeyType::Hash)?);
                if !range.is_empty() {
                    request = request.key_schema(key(range, KeyType::Range)?);
                }
                if let Some((index_name, index_hash)) = index {
                    for a in [index_hash, "timestamp"] {
                        if !attributes.contains(&a) {
                            attributes.push(a);
                        }
                    }
                    request = request.global_secondary_indexes(
                        GlobalSecondaryIndex::builder()
                            .index_name(index_name)
                            .key_schema(key(index_hash, KeyType::Hash)?)
                            .key_schema(key("timestamp", KeyType::Range)?)
                            .projection(
                                Projection::builder()
                                    .projection_type(ProjectionType::All)
                                    .build(),
                            )
                            .build()
                            .map_err(aws_error)?,
                    );
                }
                for a in attributes {
                    request = request.attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(a)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(aws_error)?,
                    );
                }
                request.send().await.map_err(sdk_error)?;
            }
            let attribute = |name: &str, kind| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(kind)
                    .build()
                    .map_err(aws_error)
            };
            client
                .create_table()
                .table_name(&tables.event_log)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key("log", KeyType::Hash)?)
                .key_schema(key("offset", KeyType::Range)?)
                .attribute_definitions(attribute("log", ScalarAttributeType::S)?)
                .attribute_definitions(attribute("offset", ScalarAttributeType::N)?)
                // The broadcaster function reads new events from the table's stream.
                .stream_specification(
                    aws_sdk_dynamodb::types::StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewImage)
                        .build()
                        .map_err(aws_error)?,
                )
                .send()
                .await
                .map_err(sdk_error)?;
            client
                .create_table()
                .table_name(&tables.user_state)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key("space", KeyType::Hash)?)
                .key_schema(key("key", KeyType::Range)?)
                .attribute_definitions(attribute("space", ScalarAttributeType::S)?)
                .attribute_definitions(attribute("key", ScalarAttributeType::S)?)
                .send()
                .await
                .map_err(sdk_error)?;
            Ok(())
        })
    }
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(aws_error)
}

type Item = HashMap<String, AttributeValue>;

/// A table to create: name, hash key, range key (or ""), GSI (name, hash key) on `timestamp`.
type TableSpec<'a> = (&'a str, &'a str, &'a str, Option<(&'a str, &'a str)>);

/// A JSON value as a DynamoDB attribute: numbers as `N` with their exact decimal text.
pub fn json_to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) if number_fits(n) => AttributeValue::N(n.to_string()),
        Value::Number(n) => AttributeValue::M(HashMap::from([(
            OUT_OF_RANGE_NUMBER.to_string(),
            AttributeValue::S(n.to_string()),
        )])),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(json_to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                .collect(),
        ),
    }
}

/// DynamoDB numbers hold magnitudes from 1e-130 to below 1e126.
fn number_fits(n: &Number) -> bool {
    match n.as_f64() {
        Some(x) if x != 0.0 => (1e-130..1e126).contains(&x.abs()),
        _ => true,
    }
}

/// The JSON value of a DynamoDB attribute written by [`json_to_attribute`].
pub fn attribute_to_json(attribute: &AttributeValue) -> Result<Value, StoreError> {
    Ok(match attribute {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(text) => Value::Number(parse_number(text)?),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(items) => Value::Array(
            items
                .iter()
                .map(attribute_to_json)
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(map) => {
            if let (1, Some(AttributeValue::S(text))) = (map.len(), map.get(OUT_OF_RANGE_NUMBER)) {
                return Ok(Value::Number(parse_number(text)?));
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
                    .collect::<Result<_, StoreError>>()?,
            )
        }
        other => return Err(StoreError::Aws(format!("unexpected attribute {other:?}"))),
    })
}

/// A DynamoDB number's text as JSON: integers exactly, others as the nearest f64 (std's
/// parser rounds correctly; serde_json's default one may be one unit off in the last place).
fn parse_number(text: &str) -> Result<Number, StoreError> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Number::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(Number::from(u));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(|| StoreError::Aws(format!("`{text}` is not a finite number")))
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(StoreError::Aws(format!(
            "attribute `{name}` is not a string: {other:?}"
        ))),
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Aws(format!("attribute `{name}` = {v} is out of range"))),
        other => Err(StoreError::Aws(format!(
            "attribute `{name}` is not a number: {other:?}"
        ))),
    }
}

fn get_json(item: &Item, name: &str) -> Result<Value, StoreError> {
    item.get(name)
        .map(attribute_to_json)
        .unwrap_or(Ok(Value::Null))
}

fn result_item(r: &AgentResult) -> Item {
    HashMap::from([
        ("result_id".into(), s(&r.result_id)),
        ("agent_type".into(), s(&r.agent)),
        ("timestamp".into(), s(&r.timestamp)),
        ("timestamp_ms".into(), n(r.timestamp_ms)),
        ("model_used".into(), s(&r.model_used)),
        ("data".into(), json_to_attribute(&r.data)),
    ])
}

fn result_of(item: &Item) -> Result<AgentResult, StoreError> {
    Ok(AgentResult {
        result_id: get_s(item, "result_id")?,
        agent: get_s(item, "agent_type")?,
        timestamp_ms: get_n(item, "timestamp_ms")?,
        timestamp: get_s(item, "timestamp")?,
        model_used: get_s(item, "model_used")?,
        data: get_json(item, "data")?,
    })
}

fn threat_item(t: &ThreatEvent) -> Item {
    HashMap::from([
        ("threat_id".into(), s(&t.threat_id)),
        ("timestamp".into(), s(&t.timestamp)),
        ("timestamp_ms".into(), n(t.timestamp_ms)),
        ("severity".into(), s(&t.severity)),
        ("threat_type".into(), s(&t.threat_type)),
        (
            "confidence".into(),
            json_to_attribute(&Value::from(t.confidence)),
        ),
        ("model_used".into(), s(&t.model_used)),
    ])
}

fn threat_of(item: &Item) -> Result<ThreatEvent, StoreError> {
    Ok(ThreatEvent {
        threat_id: get_s(item, "threat_id")?,
        timestamp_ms: get_n(item, "timestamp_ms")?,
        timestamp: get_s(item, "timestamp")?,
        severity: get_s(item, "severity")?,
        threat_type: get_s(item, "threat_type")?,
        confidence: get_n(item, "confidence")?,
        model_used: get_s(item, "model_used")?,
    })
}

/// The `timestamp` range of a filter, as inclusive ISO 8601 bounds.
fn time_range(filter: &ListFilter) -> (String, String) {
    let low = iso8601_ms(filter.since_ms.unwrap_or(0));
    let high = match filter.until_ms {
        Some(until) => iso8601_ms(until - 1),
        None => END_OF_TIME.to_string(),
    };
    (low, high)
}

/// Newest first, one page of at most `limit` items of each partition `values` of `index` (or of
/// the table when `index` is `None`) within `range`, queried at once, as one list.
async fn query_newest(
    client: &Client,
    (table, index): (&str, Option<&str>),
    partition_key: &str,
    values: &[String],
    range: &(String, String),
    limit: u32,
) -> Result<Vec<Item>, StoreError> {
    let pages = try_join_all(values.iter().map(|value| {
        client
            .query()
            .table_name(table)
            .set_index_name(index.map(str::to_string))
            .key_condition_expression("#p = :p AND #t BETWEEN :lo AND :hi")
            .expression_attribute_names("#p", partition_key)
            .expression_attribute_names("#t", "timestamp")
            .expression_attribute_values(":p", s(value))
            .expression_attribute_values(":lo", s(&range.0))
            .expression_attribute_values(":hi", s(&range.1))
            .scan_index_forward(false)
            .limit(limit as i32)
            .send()
    }))
    .await
    .map_err(sdk_error)?;
    Ok(pages
        .into_iter()
        .flat_map(|page| page.items.unwrap_or_default())
        .collect())
}

/// Every item of a table (all pages).
async fn scan_all(client: &Client, table: &str) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let output = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(sdk_error)?;
        items.extend(output.items().iter().cloned());
        match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

async fn put(client: &Client, table: &str, item: Item) -> Result<(), StoreError> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(sdk_error)?;
    Ok(())
}

fn agent_names() -> Vec<String> {
    AgentKind::ALL
        .into_iter()
        .map(|k| k.cli_name().to_string())
        .collect()
}

/// A result's item, and its body when that goes to S3 first ([`MAX_ITEM_RESULT_BYTES`]).
struct StoredResult {
    item: Item,
    offload: Option<(LargeObjects, String, Vec<u8>)>,
}

impl StoredResult {
    /// The item to write: with the body's S3 pointer, once the body is in S3.
    async fn into_item(self) -> Result<Item, StoreError> {
        let Self { mut item, offload } = self;
        if let Some((large, result_id, bytes)) = offload {
            let uri = large.put(&result_id, bytes).await?;
            item.insert(DATA_S3.into(), s(&uri));
        }
        Ok(item)
    }
}

impl DynamoStore {
    /// The item of `result`; an answer over [`MAX_ITEM_RESULT_BYTES`] goes to S3 (with a
    /// results location; without one it is refused before anything is written).
    fn stored_result(&self, result: &AgentResult) -> Result<StoredResult, StoreError> {
        let mut item = result_item(result);
        let bytes = serde_json::to_vec(&result.data)?;
        let offload = match (bytes.len() > MAX_ITEM_RESULT_BYTES, &self.large_results) {
            (false, _) => None,
            (true, Some(large)) => {
                item.remove("data");
                Some((large.clone(), result.result_id.clone(), bytes))
            }
            (true, None) => {
                return Err(StoreError::TooLarge(format!(
                    "the answer is {} bytes, over DynamoDB's item limit; set MESH_RESULTS_LOCATION (s3://bucket/prefix) to keep such results",
                    bytes.len()
                )))
            }
        };
        Ok(StoredResult { item, offload })
    }
}

impl StateStore for DynamoStore {
    fn durability(&self) -> Value {
        serde_json::json!({"backend": "dynamodb"})
    }

    /// An answer over [`MAX_ITEM_RESULT_BYTES`] goes to S3 first (with a results location;
    /// without one it is refused before anything is written), its item keeps a pointer.
    fn put_result(&self, result: &AgentResult) -> Result<(), StoreError> {
        let item = self.stored_result(result)?;
        self.run(|client, tables| async move {
            put(&client, &tables.agent_results, item.into_item().await?).await
        })
    }

    fn get_result(&self, result_id: &str) -> Result<Option<AgentResult>, StoreError> {
        let id = result_id.to_string();
        let large = self.large_results.clone();
        self.run(|client, tables| async move {
            let output = client
                .query()
                .table_name(&tables.agent_results)
                .key_condition_expression("result_id = :id")
                .expression_attribute_values(":id", s(&id))
                .limit(1)
                .send()
                .await
                .map_err(sdk_error)?;
            match output.items().first() {
                Some(item) => Ok(Some(Self::resolve(large.as_ref(), item).await?)),
                None => Ok(None),
            }
        })
    }

    fn list_results(&self, filter: &ListFilter) -> Result<Vec<AgentResult>, StoreError> {
        let agents: Vec<String> = match &filter.agent {
            Some(agent) => vec![agent.clone()],
            None => agent_names(),
        };
        let (range, limit) = (time_range(filter), filter.limit());
        let large = self.large_results.clone();
        self.run(|client, tables| async move {
            let table = (tables.agent_results.as_str(), Some(RESULTS_BY_AGENT_INDEX));
            let items = query_newest(&client, table, "agent_type", &agents, &range, limit).await?;
            let mut results: Vec<AgentResult> =
                try_join_all(items.iter().map(|item| Self::resolve(large.as_ref(), item))).await?;
            newest_first(
                &mut results,
                |r| (r.timestamp_ms, r.result_id.clone()),
                limit,
            );
            Ok(results)
        })
    }

    fn last_activity(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let range = time_range(&ListFilter::default());
        self.run(|client, tables| async move {
            let table = (tables.agent_results.as_str(), Some(RESULTS_BY_AGENT_INDEX));
            let items =
                query_newest(&client, table, "agent_type", &agent_names(), &range, 1).await?;
            items
                .iter()
                .map(|item| Ok((get_s(item, "agent_type")?, get_n(item, "timestamp_ms")?)))
                .collect()
        })
    }

    fn put_agent_state(&self, record: &AgentStateRecord) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("agent_id".into(), s(&record.agent)),
            ("timestamp".into(), s(&record.timestamp)),
            ("timestamp_ms".into(), n(record.timestamp_ms)),
            ("state".into(), json_to_attribute(&record.state)),
        ]);
        self.run(|client, tables| async move { put(&client, &tables.agent_state, item).await })
    }

    fn latest_agent_states(&self) -> Result<Vec<AgentStateRecord>, StoreError> {
        let range = time_range(&ListFilter::default());
        self.run(|client, tables| async move {
            let table = (tables.agent_state.as_str(), None);
            let items = query_newest(&client, table, "agent_id", &agent_names(), &range, 1).await?;
            items
                .iter()
                .map(|item| {
                    Ok(AgentStateRecord {
                        agent: get_s(item, "agent_id")?,
                        timestamp_ms: get_n(item, "timestamp_ms")?,
                        timestamp: get_s(item, "timestamp")?,
                        state: get_json(item, "state")?,
                    })
                })
                .collect()
        })
    }

    fn put_threat(&self, threat: &ThreatEvent) -> Result<(), StoreError> {
        let item = threat_item(threat);
        self.run(|client, tables| async move { put(&client, &tables.threat_events, item).await })
    }

    fn list_threats(&self, filter: &ListFilter) -> Result<Vec<ThreatEvent>, StoreError> {
        let severities: Vec<String> = match &filter.severity {
            Some(severity) => vec![severity.clone()],
            None => SEVERITIES.iter().map(|s| s.to_string()).collect(),
        };
        let (range, limit) = (time_range(filter), filter.limit());
        self.run(|client, tables| async move {
            let table = (
                tables.threat_events.as_str(),
                Some(THREATS_BY_SEVERITY_INDEX),
            );
            let items =
                query_newest(&client, table, "severity", &severities, &range, limit).await?;
            let mut threats: Vec<ThreatEvent> =
                items.iter().map(threat_of).collect::<Result<_, _>>()?;
            newest_first(
                &mut threats,
                |t| (t.timestamp_ms, t.threat_id.clone()),
                limit,
            );
            Ok(threats)
        })
    }

    fn put_network_metrics(&self, metrics: &[NetworkMetric]) -> Result<(), StoreError> {
        let items: Vec<Item> = metrics.iter().map(network_item).collect();
        self.run(|client, tables| async move {
            for item in items {
                put(&client, &tables.network_intelligence, item).await?;
            }
            Ok(())
        })
    }

    fn list_network_metrics(&self, msp_id: Option<&str>) -> Result<Vec<NetworkMetric>, StoreError> {
        let msp_id = msp_id.map(str::to_string);
        self.run(|client, tables| async move {
            let items = match msp_id {
                Some(id) => {
                    let mut items = Vec::new();
                    let mut start: Option<Item> = None;
                    loop {
                        let output = client
                            .query()
                            .table_name(&tables.network_intelligence)
                            .key_condition_expression("msp_id = :m")
                            .expression_attribute_values(":m", s(&id))
                            .set_exclusive_start_key(start.take())
                            .send()
                            .await
                            .map_err(sdk_error)?;
                        items.extend(output.items().iter().cloned());
                        match output.last_evaluated_key() {
                            Some(key) if !key.is_empty() => start = Some(key.clone()),
                            _ => break items,
                        }
                    }
                }
                None => scan_all(&client, &tables.network_intelligence).await?,
            };
            let mut metrics: Vec<NetworkMetric> = items
                .iter()
                .map(|item| {
                    Ok(NetworkMetric {
                        msp_id: get_s(item, "msp_id")?,
                        metric_type: get_s(item, "metric_type")?,
                        value: get_n(item, "value")?,
                        timestamp_ms: get_n(item, "timestamp_ms")?,
                        source: get_s(item, "source")?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            metrics.sort_by(|a, b| (&a.msp_id, &a.metric_type).cmp(&(&b.msp_id, &b.metric_type)));
            Ok(metrics)
        })
    }

    fn put_connection(&self, connection: &ConnectionRecord) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("connection_id".into(), s(&connection.connection_id)),
            ("connected_at_ms".into(), n(connection.connected_at_ms)),
            ("filters".into(), json_to_attribute(&connection.filters)),
            (
                "expires_at".into(),
                n(connection.connected_at_ms / 1000 + CONNECTION_TTL_S),
            ),
        ]);
        self.run(|client, tables| async move { put(&client, &tables.connections, item).await })
    }

    fn remove_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        let id = connection_id.to_string();
        self.run(|client, tables| async move {
            client
                .delete_item()
                .table_name(&tables.connections)
                .key("connection_id", s(&id))
                .send()
                .await
                .map_err(sdk_error)?;
            Ok(())
        })
    }

    fn list_connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.run(|client, tables| async move {
            let mut connections: Vec<ConnectionRecord> = scan_all(&client, &tables.connections)
                .await?
                .iter()
                .map(connection_of)
                .collect::<Result<_, StoreError>>()?;
            connections.sort_by_key(|c| c.connected_at_ms);
            Ok(connections)
        })
    }

    fn get_connection(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let id = connection_id.to_string();
        self.run(|client, tables| async move {
            let output = client
                .get_item()
                .table_name(&tables.connections)
                .key("connection_id", s(&id))
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk_error)?;
            output.item().map(connection_of).transpose()
        })
    }

    /// Does nothing: the table is shared by every instance (each Lambda function's, each
    /// server's); API Gateway's `$disconnect` and the TTL remove connections.
    fn clear_connections(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl EventLog for DynamoStore {
    /// Reserves `events.len()` offsets with one atomic `ADD` on the counter item, then writes
    /// the events. A writer that dies between the two leaves a gap, which readers skip.
    fn append(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let events = events.to_vec();
        self.run(|client, tables| async move {
            let appended = with_offsets(&client, &tables, events).await?;
            try_join_all(
                appended
                    .iter()
                    .map(|e| put(&client, &tables.event_log, event_item(e))),
            )
            .await?;
            Ok(appended)
        })
    }

    /// One `TransactWriteItems`: the result (on condition that its `result_id` is new), its
    /// threat, its network metrics and its events. Offsets are taken from the counter first, so
    /// a transaction that fails leaves a gap in the offsets, never a part of an answer.
    fn record(&self, rows: &ResultRows, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        let result = self.stored_result(&rows.result)?;
        let threat = rows.threat.as_ref().map(threat_item);
        // One write per metric key, the last value winning (as SQLite's upsert): a
        // transaction may not write one item twice.
        let mut latest: Vec<&NetworkMetric> = Vec::with_capacity(rows.network.len());
        for m in &rows.network {
            latest.retain(|k| (&k.msp_id, &k.metric_type) != (&m.msp_id, &m.metric_type));
            latest.push(m);
        }
        let network: Vec<Item> = latest.into_iter().map(network_item).collect();
        let (events, result_id) = (events.to_vec(), rows.result.result_id.clone());
        self.run(|client, tables| async move {
            let write = |table: &str, item: Item, condition: Option<&str>| {
                Put::builder()
                    .table_name(table)
                    .set_item(Some(item))
                    .set_condition_expression(condition.map(str::to_string))
                    .build()
                    .map_err(aws_error)
            };
            let new_result = Some("attribute_not_exists(result_id)");
            let mut writes = vec![write(
                &tables.agent_results,
                result.into_item().await?,
                new_result,
            )?];
            writes.extend(
                threat
                    .map(|t| write(&tables.threat_events, t, None))
                    .transpose()?,
            );
            for item in network {
                writes.push(write(&tables.network_intelligence, item, None)?);
            }
            let appended = match events.is_empty() {
                true => vec![],
                false => with_offsets(&client, &tables, events).await?,
            };
            for e in &appended {
                writes.push(write(&tables.event_log, event_item(e), None)?);
            }
            let outcome = client
                .transact_write_items()
                .set_transact_items(Some(
                    writes
                        .into_iter()
                        .map(|p| TransactWriteItem::builder().put(p).build())
                        .collect(),
                ))
                .send()
                .await;
            match outcome {
                Ok(_) => Ok(appended),
                Err(e) if result_taken(&e) => Err(StoreError::AlreadyStored(result_id)),
                Err(e) => Err(sdk_error(e)),
            }
        })
    }

    fn read_from(&self, from: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.run(|client, tables| query_log(client, tables, Some(from), limit))
    }

    /// One query of the log's partition, newest first, reversed.
    fn read_newest(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.run(|client, tables| async move {
            let mut events = query_log(client, tables, None, limit).await?;
            events.reverse();
            Ok(events)
        })
    }
}

/// At most `limit` events of the log: from offset `from` on, oldest first, or (without
/// `from`) the newest first.
async fn query_log(
    client: Client,
    tables: Tables,
    from: Option<i64>,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    let mut start: Option<Item> = None;
    while events.len() < limit as usize {
        let mut query = client
            .query()
            .table_name(&tables.event_log)
            .expression_attribute_names("#log", "log")
            .expression_attribute_values(":log", s(EVENTS_PARTITION))
            .limit((limit as usize - events.len()) as i32)
            .set_exclusive_start_key(start.take());
        query = match from {
            Some(from) => query
                .key_condition_expression("#log = :log AND #offset >= :from")
                .expression_attribute_names("#offset", "offset")
                .expression_attribute_values(":from", n(from)),
            None => query
                .key_condition_expression("#log = :log")
                .scan_index_forward(false),
        };
        let output = query.send().await.map_err(sdk_error)?;
        for item in output.items() {
            events.push(event_of(item)?);
        }
        match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    Ok(events)
}

/// The attribute of a document item that points at its body in S3.
const BODY_S3: &str = "body_s3";

/// `space` of documents and of ledgers in the user-state table.
const DOCUMENTS: &str = "doc";
const LEDGERS: &str = "ledger";

fn user_error(e: StoreError) -> UserStateError {
    UserStateError::Store(e.to_string())
}

impl UserState for DynamoStore {
    fn get(&self, key: &str) -> Result<Option<Document>, UserStateError> {
        let (key, large) = (key.to_string(), self.large_results.clone());
        self.run(|client, tables| async move {
            let output = client
                .get_item()
                .table_name(&tables.user_state)
                .key("space", s(DOCUMENTS))
                .key("key", s(&key))
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk_error)?;
            let Some(item) = output.item() else {
                return Ok(None);
            };
            let bytes = match (item.get("body"), item.get(BODY_S3), &large) {
                (Some(AttributeValue::B(blob)), _, _) => blob.clone().into_inner(),
                (_, Some(AttributeValue::S(uri)), Some(large)) => large.get_object(uri).await?,
                (_, Some(AttributeValue::S(uri)), None) => {
                    return Err(StoreError::TooLarge(format!(
                        "`{key}` is in {uri}, but no results location is set"
                    )))
                }
                _ => return Err(StoreError::Aws(format!("`{key}` has no body"))),
            };
            Ok(Some(Document {
                version: get_n(item, "version")?,
                bytes,
            }))
        })
        .map_err(user_error)
    }

    /// A document over [`MAX_DOCUMENT_BYTES`] (a model of many trees) goes to S3 first, under
    /// its key and new version, and the item keeps a pointer; without a results location it
    /// is refused.
    fn put(&self, key: &str, bytes: &[u8], expected: u64) -> Result<bool, UserStateError> {
        let large = match (bytes.len() > MAX_DOCUMENT_BYTES, &self.large_results) {
            (false, _) => None,
            (true, Some(large)) => Some(large.clone()),
            (true, None) => {
                return Err(UserStateError::TooLarge {
                    key: key.to_string(),
                    bytes: bytes.len(),
                    limit: MAX_DOCUMENT_BYTES,
                })
            }
        };
        let (key, bytes) = (key.to_string(), bytes.to_vec());
        self.run(|client, tables| async move {
            let body = match large {
                None => ("body", AttributeValue::B(bytes.into())),
                Some(large) => {
                    let name = format!("documents/{key}@{}", expected + 1);
                    (
                        BODY_S3,
                        AttributeValue::S(large.put_object(&name, bytes).await?),
                    )
                }
            };
            let request = client
                .put_item()
                .table_name(&tables.user_state)
                .item("space", s(DOCUMENTS))
                .item("key", s(&key))
                .item("version", n(expected + 1))
                .item(body.0, body.1);
            let request = if expected == 0 {
                request
                    .condition_expression("attribute_not_exists(#key)")
                    .expression_attribute_names("#key", "key")
            } else {
                request
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":expected", n(expected))
            };
            match request.send().await {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(sdk_error(e)),
            }
        })
        .map_err(user_error)
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, UserStateError> {
        let prefix = prefix.to_string();
        self.run(|client, tables| async move {
            let mut keys = Vec::new();
            let mut start: Option<Item> = None;
            loop {
                let output = client
                    .query()
                    .table_name(&tables.user_state)
                    .key_condition_expression("#space = :space AND begins_with(#key, :prefix)")
                    .expression_attribute_names("#space", "space")
                    .expression_attribute_names("#key", "key")
                    .expression_attribute_values(":space", s(DOCUMENTS))
                    .expression_attribute_values(":prefix", s(&prefix))
                    .projection_expression("#key")
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(sdk_error)?;
                for item in output.items() {
                    keys.push(get_s(item, "key")?);
                }
                match output.last_evaluated_key() {
                    Some(last) if !last.is_empty() => start = Some(last.clone()),
                    _ => return Ok(keys),
                }
            }
        })
        .map_err(user_error)
    }

    fn delete(&self, key: &str) -> Result<(), UserStateError> {
        let key = key.to_string();
        self.run(|client, tables| async move {
            client
                .delete_item()
                .table_name(&tables.user_state)
                .key("space", s(DOCUMENTS))
                .key("key", s(&key))
                .send()
                .await
                .map_err(sdk_error)?;
            Ok(())
        })
        .map_err(user_error)
    }

    fn add(&self, name: &str, amount: f64) -> Result<f64, UserStateError> {
        if !amount.is_finite() {
            return Err(UserStateError::Store(format!(
                "ledger `{name}`: {amount} cannot be added"
            )));
        }
        let name = name.to_string();
        self.run(|client, tables| async move {
            let output = client
                .update_item()
                .table_name(&tables.user_state)
                .key("space", s(LEDGERS))
                .key("key", s(&name))
                .update_expression("ADD #total :amount")
                .expression_attribute_names("#total", "total")
                .expression_attribute_values(":amount", n(amount))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .send()
                .await
                .map_err(sdk_error)?;
            get_n(output.attributes().unwrap_or(&Item::new()), "total")
        })
        .map_err(user_error)
    }

    fn total(&self, name: &str) -> Result<f64, UserStateError> {
        let name = name.to_string();
        self.run(|client, tables| async move {
            let output = client
                .get_item()
                .table_name(&tables.user_state)
                .key("space", s(LEDGERS))
                .key("key", s(&name))
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk_error)?;
            match output.item() {
                Some(item) => get_n(item, "total"),
                None => Ok(0.0),
            }
        })
        .map_err(user_error)
    }
}

/// `events` with the next offsets of the log (taken atomically from its counter item).
async fn with_offsets(
    client: &Client,
    tables: &Tables,
    events: Vec<NewEvent>,
) -> Result<Vec<Event>, StoreError> {
    let counter = client
        .update_item()
        .table_name(&tables.event_log)
        .key("log", s(COUNTER_PARTITION))
        .key("offset", n(0))
        .update_expression("ADD #last :count")
        .expression_attribute_names("#last", "last")
        .expression_attribute_values(":count", n(events.len()))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(sdk_error)?;
    let last: i64 = get_n(counter.attributes().unwrap_or(&Item::new()), "last")?;
    let first = last - events.len() as i64 + 1;
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, e)| Event {
            offset: first + i as i64,
            event_type: e.event_type,
            agent: e.agent,
            result_id: e.result_id,
            data: e.data,
            timestamp: iso8601_ms(e.timestamp_ms),
        })
        .collect())
}

/// Whether a transaction was cancelled because its result's `result_id` is stored already
/// (the result is its first write).
fn result_taken<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e.as_service_error() {
        Some(E::TransactionCanceledException(cancelled)) => {
            cancelled
                .cancellation_reasons()
                .first()
                .and_then(|r| r.code())
                == Some("ConditionalCheckFailed")
        }
        _ => false,
    }
}

fn network_item(m: &NetworkMetric) -> Item {
    HashMap::from([
        ("msp_id".into(), s(&m.msp_id)),
        ("metric_type".into(), s(&m.metric_type)),
        ("value".into(), json_to_attribute(&Value::from(m.value))),
        ("timestamp_ms".into(), n(m.timestamp_ms)),
        ("source".into(), s(&m.source)),
    ])
}

fn event_item(e: &Event) -> Item {
    HashMap::from([
        ("log".into(), s(EVENTS_PARTITION)),
        ("offset".into(), n(e.offset)),
        ("type".into(), s(&e.event_type)),
        ("agent".into(), s(&e.agent)),
        ("result_id".into(), s(&e.result_id)),
        ("data".into(), json_to_attribute(&e.data)),
        ("timestamp".into(), s(&e.timestamp)),
    ])
}

fn connection_of(item: &Item) -> Result<ConnectionRecord, StoreError> {
    Ok(ConnectionRecord {
        connection_id: get_s(item, "connection_id")?,
        connected_at_ms: get_n(item, "connected_at_ms")?,
        filters: get_json(item, "filters")?,
    })
}

fn event_of(item: &Item) -> Result<Event, StoreError> {
    Ok(Event {
        offset: get_n(item, "offset")?,
        event_type: get_s(item, "type")?,
        agent: get_s(item, "agent")?,
        result_id: get_s(item, "result_id")?,
        data: get_json(item, "data")?,
        timestamp: get_s(item, "timestamp")?,
    })
}

/// One attribute value in the JSON form of DynamoDB Streams records (`{"S": "text"}`,
/// `{"N": "1.5"}`, `{"M": {...}}`, ...); `None` for a form the event log never writes (binary).
fn attribute_from_stream(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_string()),
        "N" => AttributeValue::N(inner.as_str()?.to_string()),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(attribute_from_stream)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), attribute_from_stream(v)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// The events a DynamoDB Streams batch of the event log table carries (a Lambda event, or a
/// `GetRecords` answer: `{"Records": [...]}`): the new items of `log = "events"`, in stream
/// order. The counter item's updates are skipped; a record that is not an event item is an
/// error naming its sequence number.
pub fn events_from_stream(batch: &Value) -> Vec<Result<Event, StoreError>> {
    let records = batch["Records"].as_array().cloned().unwrap_or_default();
    records
        .iter()
        .filter(|r| r["eventName"] == "INSERT")
        .filter_map(|r| {
            let image = &r["dynamodb"]["NewImage"];
            if image["log"]["S"] != EVENTS_PARTITION {
                return None;
            }
            let sequence = r["dynamodb"]["SequenceNumber"].as_str().unwrap_or("?");
            let item: Option<Item> = image.as_object().and_then(|m| {
                m.iter()
                    .map(|(k, v)| Some((k.clone(), attribute_from_stream(v)?)))
                    .collect()
            });
            Some(
                item.ok_or_else(|| {
                    StoreError::Aws(format!("stream record {sequence}: unreadable image"))
                })
                .and_then(|item| event_of(&item)),
            )
        })
        .collect()
}

/// Sorts newest first (ties by id, descending, as UUID v7 ids are time-ordered) and keeps `limit`.
fn newest_first<T>(rows: &mut Vec<T>, key: impl Fn(&T) -> (i64, String), limit: u32) {
    rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
    rows.truncate(limit as usize);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_numbers_become_dynamodb_numbers_and_come_back_exactly() {
        let value = json!({"score": 0.91, "count": 3, "big": 12345678901234567_i64, "neg": -1.5e-7,
            "last_digit": 2.8131227125527406e-8,
            "huge": 1e300, "tiny": 1e-200, "list": [1, "a", null, true], "nested": {"x": 0.1}});
        let attribute = json_to_attribute(&value);
        let AttributeValue::M(map) = &attribute else {
            panic!("a map")
        };
        assert_eq!(map["score"], AttributeValue::N("0.91".into()));
        assert_eq!(map["count"], AttributeValue::N("3".into()));
        assert_eq!(map["big"], AttributeValue::N("12345678901234567".into()));
        assert_eq!(map["neg"], AttributeValue::N("-1.5e-7".into()));
        assert!(
            matches!(&map["huge"], AttributeValue::M(m) if m.contains_key(OUT_OF_RANGE_NUMBER))
        );
        assert!(matches!(&map["tiny"], AttributeValue::M(_)));
        assert_eq!(attribute_to_json(&attribute).unwrap(), value);
    }

    /// A stream batch by hand: an event item (nested map, list, number), the counter item's
    /// insert and a modify (both skipped), and an image that is not an event (an error).
    #[test]
    fn stream_batches_give_the_event_items() {
        let batch = serde_json::json!({"Records": [
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1", "NewImage": {
                "log": {"S": "events"}, "offset": {"N": "7"}, "type": {"S": "alert"},
                "agent": {"S": "anomaly-detection"}, "result_id": {"S": "r1"},
                "timestamp": {"S": "2026-12-03T08:00:00.000Z"},
                "data": {"M": {"score": {"N": "0.5"}, "tags": {"L": [{"S": "a"}, {"NULL": true}]}, "ok": {"BOOL": true}}}}}},
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "2", "NewImage": {
                "log": {"S": "counter"}, "offset": {"N": "0"}, "last": {"N": "7"}}}},
            {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "3", "NewImage": {
                "log": {"S": "events"}, "offset": {"N": "7"}}}},
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "4", "NewImage": {
                "log": {"S": "events"}, "offset": {"N": "8"}}}}
        ]});
        let events = events_from_stream(&batch);
        assert_eq!(events.len(), 2);
        let first = events[0].as_ref().unwrap();
        assert_eq!(first.offset, 7);
        assert_eq!(first.event_type, "alert");
        assert_eq!(
            first.data,
            serde_json::json!({"score": 0.5, "tags": ["a", null], "ok": true})
        );
        assert!(events[1].is_err());
    }

    #[test]
    fn time_ranges_are_inclusive_iso_bounds() {
        let filter = ListFilter {
            since_ms: Some(1_000),
            until_ms: Some(2_000),
            ..Default::default()
        };
        assert_eq!(
            time_range(&filter),
            (
                "1970-01-01T00:00:01.000Z".to_string(),
                "1970-01-01T00:00:01.999Z".to_string()
            )
        );
        assert_eq!(time_range(&ListFilter::default()).1, END_OF_TIME);
    }
}
