//! The event stream and async jobs on AWS, against moto's server (DynamoDB, Kinesis, SQS) and
//! the project's stand-in for the API Gateway management API:
//! - the event log on DynamoDB appends and replays like the embedded SQLite log, with one
//!   order across concurrent writers;
//! - a server on the AWS backends logs every event in DynamoDB, puts it on the Kinesis stream,
//!   and pushes it to the WebSocket API connections whose filters match, forgetting a
//!   connection the API reports gone;
//! - `POST /jobs` queues on SQS, `msp-mesh worker` runs the jobs (the same answer as the
//!   synchronous route; an invalid one stored as failed), and a message that is not a job ends
//!   in the dead-letter queue after the redrive policy's receives.
//!
//! Needs moto (`scripts/aws_tools.sh` installs it; `scripts/test.sh` runs that first).

mod common;

use std::sync::Arc;

use common::{aws_env, create_queue, free_port, mesh_command, sdk_config, start_moto, Server};
use mesh_core::store::dynamo::{DynamoStore, Tables};
use mesh_core::store::{ConnectionRecord, Event, EventLog, NewEvent, SqliteStore, StateStore};
use mesh_standin::{Script, StandIn};
use serde_json::{json, Value};

/// Text the threat agent judges CRITICAL ransomware by its documented rule.
const CRITICAL_THREAT: &str = "Ransomware outbreak: LockBit encrypted every file share on FS01 and left a ransom note \
     demanding bitcoin for the decryption key. The encryptor dropped C:\\Users\\Public\\svc.exe \
     (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08) and deleted the shadow copies.";
const BENIGN: &str = "Hi team, the quarterly all-hands moved to Thursday at 3pm in the main conference room. Lunch will be provided.";

fn new_event(kind: &str, result_id: &str, ms: i64) -> NewEvent {
    NewEvent {
        event_type: kind.into(),
        agent: "threat-intelligence".into(),
        result_id: result_id.into(),
        data: json!({"severity": "HIGH", "confidence": 0.8125, "n": ms}),
        timestamp_ms: ms,
    }
}

fn exercise_log(log: &dyn EventLog) -> Value {
    let first = log
        .append(&[
            new_event("agent_result", "r1", 1_000),
            new_event("alert", "r1", 1_000),
        ])
        .unwrap();
    let second = log
        .append(&[new_event("agent_result", "r2", 2_000)])
        .unwrap();
    json!({
        "appended": [first, second],
        "all": log.read_from(1, 100).unwrap(),
        "from_2_limit_1": log.read_from(2, 1).unwrap(),
        "past_the_end": log.read_from(4, 100).unwrap(),
        "newest_2": log.read_newest(2).unwrap(),
        "newest_100": log.read_newest(100).unwrap(),
    })
}

#[test]
fn the_dynamodb_event_log_replays_like_sqlite_and_orders_concurrent_writers() {
    let moto = start_moto();
    let store = Arc::new(DynamoStore::new(&sdk_config(&moto.endpoint), Tables::default()).unwrap());
    store.create_tables().unwrap();
    let got = exercise_log(store.as_ref());
    assert_eq!(got, exercise_log(&SqliteStore::in_memory().unwrap()));
    let offsets: Vec<i64> = got["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2, 3]);
    assert_eq!(got["from_2_limit_1"][0]["type"], "alert");

    // Four writers at once, five pairs each: 40 distinct offsets after the first 3, each
    // pair's two events adjacent.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..5)
                    .flat_map(|i| {
                        let id = format!("w{w}-{i}");
                        store
                            .append(&[
                                new_event("agent_result", &id, 5_000),
                                new_event("alert", &id, 5_000),
                            ])
                            .unwrap()
                    })
                    .collect::<Vec<Event>>()
            })
        })
        .collect();
    let appended: Vec<Event> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    for pair in appended.chunks(2) {
        assert_eq!(pair[1].offset, pair[0].offset + 1, "{pair:?}");
    }
    let mut offsets: Vec<i64> = appended.iter().map(|e| e.offset).collect();
    offsets.sort();
    assert_eq!(offsets, (4..=43).collect::<Vec<_>>());
    let replayed = store.read_from(4, 1000).unwrap();
    assert_eq!(replayed.len(), 40);
    for event in &appended {
        assert_eq!(&replayed[(event.offset - 4) as usize], event);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Every record on every shard of the stream, as JSON, ordered by the events' offsets.
async fn kinesis_events(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Value> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut events = vec![];
    for shard in shards.shards() {
        let iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let records = client
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        for record in records.records() {
            events.push(serde_json::from_slice::<Value>(record.data().as_ref()).unwrap());
        }
    }
    events.sort_by_key(|e| e["offset"].as_i64());
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_to_dynamodb_kinesis_and_the_websocket_api() {
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    let store = Arc::new(DynamoStore::new(&config, Tables::default()).unwrap());
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    kinesis
        .create_stream()
        .stream_name(mesh_core::sinks::EVENTS_STREAM)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    // The management API's stand-in, with one connection that has gone away.
    let standin = Arc::new(StandIn::default());
    *standin.script.lock().unwrap() = Script {
        gone_connections: vec!["c-gone".into()],
        ..Script::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let management = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(mesh_standin::serve(listener, standin.clone()));
    let seeded = store.clone();
    blocking(move || {
        seeded.create_tables().unwrap();
        for (id, filters) in [
            (
                "c-alerts",
                json!({"event_types": ["alert"], "agents": [], "paused": false}),
            ),
            (
                "c-all",
                json!({"event_types": [], "agents": [], "paused": false}),
            ),
            (
                "c-gone",
                json!({"event_types": [], "agents": [], "paused": false}),
            ),
        ] {
            seeded
                .put_connection(&ConnectionRecord {
                    connection_id: id.into(),
                    connected_at_ms: 1_000,
                    filters,
                })
                .unwrap();
        }
    })
    .await;

    let partners =
        std::env::temp_dir().join(format!("mesh-streams-partners-{}.json", std::process::id()));
    let endpoint = moto.endpoint.clone();
    let server = blocking(move || {
        Server::start_with_env(
            free_port(),
            &partners,
            &[
                "--state-backend",
                "aws",
                "--kinesis-stream",
                mesh_core::sinks::EVENTS_STREAM,
                "--websocket-endpoint",
                &management,
                "--only-agents",
                "threat-intelligence",
            ],
            &aws_env(&endpoint),
        )
    })
    .await;
    let server = Arc::new(server);
    let s = server.clone();
    let (critical, benign, logged, metrics) = blocking(move || {
        let (status, critical) = s.post(
            "/threat-intelligence/analyze",
            &json!({"text": CRITICAL_THREAT}),
        );
        assert_eq!(status, 200, "{critical}");
        let (status, benign) = s.post("/threat-intelligence/analyze", &json!({"text": BENIGN}));
        assert_eq!(status, 200, "{benign}");
        let (status, logged) = s.get("/events?from=1");
        assert_eq!(status, 200, "{logged}");
        let (_, _, metrics) = s.request("GET", "/metrics", &[], b"");
        (critical, benign, logged, metrics)
    })
    .await;
    assert_eq!(critical["severity"], "CRITICAL");
    assert_eq!(benign["severity"], "LOW");

    // The log, read back from DynamoDB: result, its alert, the second result.
    let logged = logged["events"].as_array().unwrap().clone();
    let summary: Vec<(i64, &str, &str)> = logged
        .iter()
        .map(|e| {
            (
                e["offset"].as_i64().unwrap(),
                e["type"].as_str().unwrap(),
                e["result_id"].as_str().unwrap(),
            )
        })
        .collect();
    let (c, b) = (
        critical["result_id"].as_str().unwrap(),
        benign["result_id"].as_str().unwrap(),
    );
    assert_eq!(
        summary,
        [
            (1, "agent_result", c),
            (2, "alert", c),
            (3, "agent_result", b)
        ]
    );
    assert_eq!(logged[0]["data"], critical);

    // The same events on the Kinesis stream.
    assert_eq!(
        kinesis_events(&kinesis, mesh_core::sinks::EVENTS_STREAM).await,
        logged
    );

    // Pushed to the connections whose filters match, in offset order.
    let posts = standin.calls_of("ApiGateway.PostToConnection");
    let sent_to = |id: &str| -> Vec<i64> {
        posts
            .iter()
            .filter(|c| c.body["connection_id"] == id && c.fault.is_none())
            .map(|c| c.body["data"]["offset"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(sent_to("c-all"), [1, 2, 3]);
    assert_eq!(sent_to("c-alerts"), [2]);
    let alert = posts
        .iter()
        .find(|c| c.body["connection_id"] == "c-alerts")
        .unwrap();
    assert_eq!(alert.body["data"]["data"]["severity"], "CRITICAL");
    // The gone connection was tried once, then forgotten.
    assert_eq!(sent_to("c-gone").len(), 1, "{posts:?}");
    let remaining = blocking(move || store.list_connections().unwrap()).await;
    let mut ids: Vec<String> = remaining.into_iter().map(|c| c.connection_id).collect();
    ids.sort();
    assert_eq!(ids, ["c-alerts", "c-all"]);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("mesh_event_sink_deliveries_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mesh_event_sink_failures_total 0"),
        "{metrics}"
    );
}

/// A series of 60 points with one spike, at index 40.
fn spiky_series() -> Vec<f64> {
    (0..60)
        .map(|i| if i == 40 { 95.0 } else { 50.0 + (i % 5) as f64 })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queue_on_sqs_run_on_a_worker_and_poison_goes_to_the_dead_letter_queue() {
    use aws_sdk_sqs::types::QueueAttributeName as Attr;
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    let creating = DynamoStore::new(&config, Tables::default()).unwrap();
    blocking(move || creating.create_tables().unwrap()).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (dlq, dlq_arn) = create_queue(&sqs, "msp-async-processing-dlq", &[]).await;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string();
    let (queue, _) = create_queue(
        &sqs,
        mesh_core::jobs::ASYNC_QUEUE,
        &[
            (Attr::VisibilityTimeout, "1".into()),
            (Attr::RedrivePolicy, redrive),
        ],
    )
    .await;

    let partners =
        std::env::temp_dir().join(format!("mesh-jobs-partners-{}.json", std::process::id()));
    let args: Vec<String> = [
        "--state-backend",
        "aws",
        "--async-queue-url",
        &queue,
        "--only-agents",
        "anomaly-detection",
    ]
    .map(str::to_string)
    .to_vec();
    let (endpoint, server_args, server_partners) =
        (moto.endpoint.clone(), args.clone(), partners.clone());
    let server = blocking(move || {
        let args: Vec<&str> = server_args.iter().map(String::as_str).collect();
        Server::start_with_env(free_port(), &server_partners, &args, &aws_env(&endpoint))
    })
    .await;
    let server = Arc::new(server);
    let s = server.clone();
    let (sync, good, bad) = blocking(move || {
        let request = json!({"values": spiky_series()});
        let (status, sync) = s.post("/anomaly/detect", &request);
        assert_eq!(status, 200, "{sync}");
        let (status, good) = s.post("/jobs", &json!({"agent": "anomaly-detection", "request": request}));
        assert_eq!(status, 202, "{good}");
        assert_eq!(good["status"], "queued");
        // Rejected by the agent itself (not by the request's shape): queued, then failed.
        let (status, bad) = s.post(
            "/jobs",
            &json!({"agent": "anomaly-detection", "request": {"values": spiky_series(), "contamination": 0.9}}),
        );
        assert_eq!(status, 202, "{bad}");
        // Refused at once: an unknown agent, a request of the wrong shape, an agent this
        // server does not load still checks the shape.
        let (status, e) = s.post("/jobs", &json!({"agent": "astrology", "request": {}}));
        assert_eq!((status, e["field"].as_str()), (422, Some("agent")), "{e}");
        let (status, e) = s.post("/jobs", &json!({"agent": "anomaly-detection", "request": {"values": "many"}}));
        assert_eq!((status, e["field"].as_str()), (422, Some("request.values")), "{e}");
        let id = good["job_id"].as_str().unwrap();
        let (status, pending) = s.get(&format!("/jobs/{id}"));
        assert_eq!((status, pending["status"].as_str()), (200, Some("pending")), "{pending}");
        (sync, good, bad)
    })
    .await;
    sqs.send_message()
        .queue_url(&queue)
        .message_body("this is not a job")
        .send()
        .await
        .unwrap();

    // The worker: runs both jobs, leaves the poison message until SQS dead-letters it.
    let (worker_partners, worker_args, endpoint) =
        (partners.clone(), args.clone(), moto.endpoint.clone());
    let output = blocking(move || {
        let mut worker = mesh_command("worker", &worker_partners);
        worker
            .args(&worker_args)
            .args(["--idle-exit", "4s"])
            .envs(aws_env(&endpoint));
        worker.output().unwrap()
    })
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("worker: 1 done, 1 failed"), "{stderr}");

    let s = server.clone();
    let (good_id, bad_id) = (
        good["job_id"].as_str().unwrap().to_string(),
        bad["job_id"].as_str().unwrap().to_string(),
    );
    let (done, failed, stored) = blocking(move || {
        (
            s.get(&format!("/jobs/{good_id}")).1,
            s.get(&format!("/jobs/{bad_id}")).1,
            s.get(&format!("/results/{good_id}")).1,
        )
    })
    .await;
    assert_eq!(done["status"], "done", "{done}");
    let result = &done["result"];
    assert_eq!(result["result_id"], good["job_id"]);
    // The same answer as the synchronous route (the forest is seeded).
    assert_eq!(result["anomalies"], sync["anomalies"], "{result}");
    assert!(result["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["index"] == 40));
    assert_eq!(result["model_used"], sync["model_used"]);
    assert_eq!(stored["data"], *result);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["field"], "contamination", "{failed}");

    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body(), Some("this is not a job"));
    let left = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(Attr::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        left.attributes().unwrap()[&Attr::ApproximateNumberOfMessages],
        "0"
    );
}
