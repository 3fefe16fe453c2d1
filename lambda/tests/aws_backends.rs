//! The AWS backends against moto's server (DynamoDB, EventBridge and SQS wire protocols,
//! started here on a free port): the DynamoDB store gives the same answers as the embedded
//! SQLite store and keeps JSON numbers as DynamoDB numbers with their exact text; a server on
//! DynamoDB with an event bus stores a critical threat there and sends it through an
//! EventBridge rule (the deployment template's pattern) to an SQS queue, and sends no LOW one.
//!
//! Needs moto (`scripts/aws_tools.sh` installs it into `target/tools/aws`, which
//! `scripts/test.sh` runs first; `MESH_MOTO_SERVER` names another).

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{create_queue, sdk_config, start_moto, Server};
use mesh_agents::user_state::UserState;
use mesh_core::store::dynamo::{DynamoStore, Tables};
use mesh_core::store::{
    AgentResult, AgentStateRecord, ConnectionRecord, ListFilter, NetworkMetric, SqliteStore,
    StateStore, ThreatEvent,
};
use serde_json::json;

fn result(id: &str, agent: &str, ms: i64, score: f64) -> AgentResult {
    AgentResult {
        result_id: id.into(),
        agent: agent.into(),
        timestamp_ms: ms,
        timestamp: mesh_core::store::iso8601_ms(ms),
        model_used: "all-minilm-l6-v2@1".into(),
        data: json!({"score": score, "count": 3, "labels": ["a", "b"], "nested": {"p": 0.125},
            "missing": null, "ok": true}),
    }
}

fn threat(id: &str, ms: i64, severity: &str) -> ThreatEvent {
    ThreatEvent {
        threat_id: id.into(),
        timestamp_ms: ms,
        timestamp: mesh_core::store::iso8601_ms(ms),
        severity: severity.into(),
        threat_type: "ransomware".into(),
        confidence: 0.875,
        model_used: "threat-category-minilm@1".into(),
    }
}

/// Writes the same rows into a store and returns what every read gives back, as JSON.
fn exercise(store: &dyn StateStore) -> serde_json::Value {
    store
        .put_result(&result("r1", "anomaly-detection", 1_000, 0.5))
        .unwrap();
    store
        .put_result(&result("r2", "threat-intelligence", 2_000, 0.91))
        .unwrap();
    store
        .put_result(&result("r3", "anomaly-detection", 3_000, -1.5e-7))
        .unwrap();
    for (ms, loaded) in [(1_000, false), (2_000, true)] {
        store
            .put_agent_state(&AgentStateRecord {
                agent: "compliance".into(),
                timestamp_ms: ms,
                timestamp: mesh_core::store::iso8601_ms(ms),
                state: json!({"model_loaded": loaded}),
            })
            .unwrap();
    }
    store.put_threat(&threat("t1", 1_000, "HIGH")).unwrap();
    store.put_threat(&threat("t2", 2_000, "CRITICAL")).unwrap();
    store.put_threat(&threat("t3", 3_000, "LOW")).unwrap();
    let metric = |msp: &str, kind: &str, value: f64| NetworkMetric {
        msp_id: msp.into(),
        metric_type: kind.into(),
        value,
        timestamp_ms: 5_000,
        source: "r9".into(),
    };
    store
        .put_network_metrics(&[
            metric("msp-1", "records", 10.0),
            metric("msp-2", "records", 7.0),
        ])
        .unwrap();
    store
        .put_network_metrics(&[metric("msp-1", "records", 12.0)])
        .unwrap();
    for (id, at) in [("c1", 1_000), ("c2", 2_000)] {
        store
            .put_connection(&ConnectionRecord {
                connection_id: id.into(),
                connected_at_ms: at,
                filters: json!({"agents": ["threat-intelligence"]}),
            })
            .unwrap();
    }
    store.remove_connection("c1").unwrap();

    let ids = |rows: Vec<AgentResult>| rows.into_iter().map(|r| r.result_id).collect::<Vec<_>>();
    let threat_ids =
        |rows: Vec<ThreatEvent>| rows.into_iter().map(|t| t.threat_id).collect::<Vec<_>>();
    let filter = |agent: Option<&str>, severity: Option<&str>, since, until, limit| ListFilter {
        agent: agent.map(str::to_string),
        severity: severity.map(str::to_string),
        since_ms: since,
        until_ms: until,
        limit,
    };
    let mut activity = store.last_activity().unwrap();
    activity.sort();
    json!({
        "get": store.get_result("r2").unwrap(),
        "get_missing": store.get_result("nope").unwrap(),
        "all": ids(store.list_results(&filter(None, None, None, None, None)).unwrap()),
        "all_limit_2": ids(store.list_results(&filter(None, None, None, None, Some(2))).unwrap()),
        "anomaly": ids(store.list_results(&filter(Some("anomaly-detection"), None, None, None, None)).unwrap()),
        "since_until": ids(store.list_results(&filter(None, None, Some(2_000), Some(3_000), None)).unwrap()),
        "activity": activity,
        "states": store.latest_agent_states().unwrap(),
        "threats": threat_ids(store.list_threats(&filter(None, None, None, None, None)).unwrap()),
        "critical": store.list_threats(&filter(None, Some("CRITICAL"), None, None, None)).unwrap(),
        "threats_since": threat_ids(store.list_threats(&filter(None, None, Some(2_000), None, None)).unwrap()),
        "metrics": store.list_network_metrics(None).unwrap(),
        "msp_1": store.list_network_metrics(Some("msp-1")).unwrap(),
        "connections": store.list_connections().unwrap(),
        "connection_c2": store.get_connection("c2").unwrap(),
        "connection_missing": store.get_connection("nope").unwrap(),
    })
}

#[test]
fn dynamodb_store_answers_like_the_sqlite_store() {
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    let dynamo = DynamoStore::new(&config, Tables::default()).unwrap();
    dynamo.create_tables().unwrap();
    let got = exercise(&dynamo);
    let expected = exercise(&SqliteStore::in_memory().unwrap());
    assert_eq!(got, expected);
    // Hand-checked against the rows written above.
    assert_eq!(expected["all"], json!(["r3", "r2", "r1"]));
    assert_eq!(expected["all_limit_2"], json!(["r3", "r2"]));
    assert_eq!(expected["anomaly"], json!(["r3", "r1"]));
    assert_eq!(expected["since_until"], json!(["r2"]));
    assert_eq!(expected["threats"], json!(["t3", "t2", "t1"]));
    assert_eq!(expected["threats_since"], json!(["t3", "t2"]));
    assert_eq!(expected["critical"][0]["threat_id"], "t2");
    assert_eq!(expected["states"][0]["state"]["model_loaded"], true);
    assert_eq!(expected["msp_1"][0]["value"], 12.0);
    assert_eq!(expected["connections"][0]["connection_id"], "c2");
    assert_eq!(expected["connection_c2"], expected["connections"][0]);
    assert!(expected["connection_missing"].is_null());
    assert!(expected["get_missing"].is_null());
}

#[test]
fn dynamodb_user_state_keeps_the_contract_across_stores() {
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    let one = DynamoStore::new(&config, Tables::default()).unwrap();
    one.create_tables().unwrap();
    mesh_agents::user_state::check_contract(&one);
    // A second store (another instance) on the same tables sees and extends the same state.
    let two = DynamoStore::new(&config, Tables::default()).unwrap();
    assert_eq!(two.get("a/1").unwrap().unwrap().version, 2);
    assert!(!two.put("a/1", b"stale", 1).unwrap());
    assert_eq!(two.add("eps", 0.25).unwrap(), 1.0);
    assert_eq!(one.total("eps").unwrap(), 1.0);
    let big = vec![0u8; mesh_core::store::dynamo::MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(
        one.put("big", &big, 0),
        Err(mesh_agents::user_state::UserStateError::TooLarge { .. })
    ));
}

/// moto with the `mesh-results` bucket, and its SDK configuration.
async fn moto_with_results_bucket() -> (common::Moto, aws_config::SdkConfig) {
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    mesh_inference::aws::s3_client(&config)
        .create_bucket()
        .bucket("mesh-results")
        .send()
        .await
        .unwrap();
    (moto, config)
}

/// A DynamoDB store (tables created) that keeps what is over the item limit in `mesh-results`.
fn store_with_results_location(config: &aws_config::SdkConfig) -> DynamoStore {
    let store = DynamoStore::new(config, Tables::default())
        .unwrap()
        .with_large_results(config, "s3://mesh-results/prod")
        .unwrap();
    store.create_tables().unwrap();
    store
}

/// An answer over DynamoDB's item limit (over 500 KB of scores) is kept whole: its JSON in S3,
/// the item pointing at it, read back by `get_result` and `list_results`; without a results
/// location it is refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_the_item_limit_go_to_s3() {
    let (_moto, config) = moto_with_results_bucket().await;
    let scores: Vec<f64> = (0..60_000).map(|i| i as f64 / 7.0).collect();
    let mut large = result("big", "anomaly-detection", 5_000, 0.5);
    large.data = json!({"anomalies_detected": 0, "anomaly_scores": scores});
    assert!(serde_json::to_vec(&large.data).unwrap().len() > 500_000);
    let (stored, listed, refused) = tokio::task::spawn_blocking(move || {
        let store = store_with_results_location(&config);
        store.put_result(&large).unwrap();
        let stored = store.get_result("big").unwrap().expect("stored");
        assert_eq!(stored, large);
        let listed = store.list_results(&ListFilter::default()).unwrap();
        let plain = DynamoStore::new(&config, Tables::default()).unwrap();
        let mut other = large.clone();
        other.result_id = "big-2".into();
        let refused = plain.put_result(&other);
        (stored, listed, refused)
    })
    .await
    .unwrap();
    assert_eq!(listed, vec![stored]);
    assert!(
        matches!(refused, Err(mesh_core::store::StoreError::TooLarge(ref m)) if m.contains("MESH_RESULTS_LOCATION")),
        "{refused:?}"
    );
}

/// A user document over the item limit (a model of many trees) goes to S3 under its key and
/// version, the item pointing at it; it reads back whole, a newer version replaces it under
/// the same version check, and without a results location it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_over_the_item_limit_go_to_s3() {
    use mesh_agents::user_state::UserStateError;
    let (_moto, config) = moto_with_results_bucket().await;
    tokio::task::spawn_blocking(move || {
        let store = store_with_results_location(&config);
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        assert!(store.put("client-health/models/trees/v1", &big, 0).unwrap());
        let read = store.get("client-health/models/trees/v1").unwrap().unwrap();
        assert_eq!((read.version, read.bytes == big), (1, true));
        let small = b"a small body".to_vec();
        assert!(
            !store
                .put("client-health/models/trees/v1", &small, 0)
                .unwrap(),
            "taken"
        );
        assert!(store
            .put("client-health/models/trees/v1", &small, 1)
            .unwrap());
        let read = store.get("client-health/models/trees/v1").unwrap().unwrap();
        assert_eq!((read.version, read.bytes), (2, small));
        let plain = DynamoStore::new(&config, Tables::default()).unwrap();
        let refused = plain.put("other", &big, 0);
        assert!(
            matches!(refused, Err(UserStateError::TooLarge { .. })),
            "{refused:?}"
        );
    })
    .await
    .unwrap();
}

/// One `TransactWriteItems` per answer: the result, its threat, its network metric and its
/// events are stored together, and a second answer under the same `result_id` (a concurrent
/// retry) stores nothing of its own: no second event, the threat unchanged.
#[tokio::test]
async fn an_answer_is_one_transaction_on_dynamodb() {
    use mesh_core::store::{EventLog, NewEvent, ResultRows, StoreError};
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    let answer = |severity: &str| {
        let mut rows = ResultRows::new("threat-intelligence", "r1", "m@1", json!({"s": severity}));
        rows.threat = Some(threat("r1", rows.result.timestamp_ms, severity));
        rows.network = vec![NetworkMetric {
            msp_id: "mesh".into(),
            metric_type: "threats".into(),
            value: 1.0,
            timestamp_ms: rows.result.timestamp_ms,
            source: "r1".into(),
        }];
        let event = |event_type: &str| NewEvent {
            event_type: event_type.into(),
            agent: "threat-intelligence".into(),
            result_id: "r1".into(),
            data: json!({"severity": severity}),
            timestamp_ms: 1_000,
        };
        (rows, vec![event("agent_result"), event("alert")])
    };
    tokio::task::spawn_blocking(move || {
        let store = DynamoStore::new(&config, Tables::default()).unwrap();
        store.create_tables().unwrap();
        let (rows, events) = answer("HIGH");
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
        assert_eq!(store.read_from(1, 100).unwrap(), appended);

        let (again, more) = answer("CRITICAL");
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
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn numbers_are_dynamodb_numbers_with_their_exact_text() {
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    let store = DynamoStore::new(&config, Tables::default()).unwrap();
    store.create_tables().unwrap();
    store
        .put_result(&result("r1", "anomaly-detection", 1_000, 0.91))
        .unwrap();
    store.put_threat(&threat("t1", 1_000, "HIGH")).unwrap();
    let client = aws_sdk_dynamodb::Client::new(&config);
    let item = client
        .get_item()
        .table_name("AgentResults")
        .key("result_id", AttributeValue::S("r1".into()))
        .key("agent_type", AttributeValue::S("anomaly-detection".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the stored item");
    let AttributeValue::M(data) = &item["data"] else {
        panic!("data is a map: {:?}", item["data"])
    };
    assert_eq!(data["score"], AttributeValue::N("0.91".into()));
    assert_eq!(data["count"], AttributeValue::N("3".into()));
    let AttributeValue::M(nested) = &data["nested"] else {
        panic!("nested is a map")
    };
    assert_eq!(nested["p"], AttributeValue::N("0.125".into()));
    assert_eq!(item["timestamp_ms"], AttributeValue::N("1000".into()));
    assert_eq!(
        item["timestamp"],
        AttributeValue::S("1970-01-01T00:00:01.000Z".into())
    );
    let threat = client
        .get_item()
        .table_name("ThreatEvents")
        .key("threat_id", AttributeValue::S("t1".into()))
        .key(
            "timestamp",
            AttributeValue::S("1970-01-01T00:00:01.000Z".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the stored threat");
    assert_eq!(threat["confidence"], AttributeValue::N("0.875".into()));
    assert_eq!(threat["severity"], AttributeValue::S("HIGH".into()));
}

/// Text the threat agent judges CRITICAL ransomware by its documented rule.
const CRITICAL_THREAT: &str = "Ransomware outbreak: LockBit encrypted every file share on FS01 and left a ransom note \
     demanding bitcoin for the decryption key. The encryptor dropped C:\\Users\\Public\\svc.exe \
     (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08) and deleted the shadow copies.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_dynamodb_sends_severe_threats_through_eventbridge() {
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    DynamoStore::new(&config, Tables::default())
        .unwrap()
        .create_tables()
        .unwrap();
    // The template's rule, with an SQS queue as its target to observe what it routes.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (queue, queue_arn) = create_queue(&sqs, "alerts", &[]).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let pattern = json!({"source": [mesh_core::notify::EVENT_SOURCE],
        "detail-type": [mesh_core::notify::THREAT_DETAIL_TYPE],
        "detail": {"severity": ["HIGH", "CRITICAL"]}});
    events
        .put_rule()
        .name("ThreatDetectionRule")
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("ThreatDetectionRule")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("alerts")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    for (name, value) in [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIDMOTO"),
        ("AWS_SECRET_ACCESS_KEY", "moto-secret"),
        ("AWS_REGION", "us-east-1"),
    ] {
        std::env::set_var(name, value);
    }
    let partners =
        std::env::temp_dir().join(format!("mesh-aws-partners-{}.json", std::process::id()));
    let server = tokio::task::spawn_blocking(move || {
        Server::start(
            &partners,
            &[
                "--state-backend",
                "aws",
                "--event-bus",
                "default",
                "--state-db",
                ":memory:",
            ],
        )
    })
    .await
    .unwrap();
    let server = std::sync::Arc::new(server);
    let s = server.clone();
    let (critical, benign, stored, threats, metrics) = tokio::task::spawn_blocking(move || {
        let (status, critical) = s.post(
            "/threat-intelligence/analyze",
            &json!({"text": CRITICAL_THREAT}),
        );
        assert_eq!(status, 200, "{critical}");
        let (status, benign) = s.post(
            "/threat-intelligence/analyze",
            &json!({"text": "Hi team, the quarterly all-hands moved to Thursday at 3pm in the main conference room. Lunch will be provided."}),
        );
        assert_eq!(status, 200, "{benign}");
        let id = critical["result_id"].as_str().unwrap();
        let stored = s.get(&format!("/results/{id}")).1;
        let threats = s.get("/threats?severity=CRITICAL").1;
        let (_, _, metrics) = s.request("GET", "/metrics", &[], b"");
        (critical, benign, stored, threats, metrics)
    })
    .await
    .unwrap();
    assert_eq!(critical["severity"], "CRITICAL", "{critical}");
    assert_eq!(benign["severity"], "LOW", "{benign}");
    let id = critical["result_id"].as_str().unwrap();
    assert_eq!(stored["data"], critical, "read back from DynamoDB");
    assert_eq!(threats["threats"][0]["threat_id"], id, "{threats}");
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("mesh_threat_notifications_total 1"),
        "{metrics}"
    );

    let messages = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(
        messages.len(),
        1,
        "only the critical threat is routed: {messages:?}"
    );
    let event: serde_json::Value =
        serde_json::from_str(messages[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(event["source"], mesh_core::notify::EVENT_SOURCE);
    assert_eq!(event["detail-type"], mesh_core::notify::THREAT_DETAIL_TYPE);
    assert_eq!(event["detail"]["threat_id"], id);
    assert_eq!(event["detail"]["severity"], "CRITICAL");
    assert_eq!(event["detail"]["threat_type"], "ransomware");
    assert_eq!(event["detail"]["model_used"], critical["model_used"]);
}
