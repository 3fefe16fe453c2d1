//! The `bootstrap` binary as a Lambda function under `cargo lambda watch` (the Lambda runtime
//! and Invoke APIs), with its model bundle in a real S3 server (s3s-fs, SigV4 checked, served
//! in process): `msp-mesh bundle push` publishes the workspace's prepared models, the function
//! syncs them into its cache at a cold start, answers API Gateway events right, and does not
//! download again on a warm invocation nor on a later cold start with the same `/tmp`.
//!
//! Needs `cargo-lambda` (`scripts/aws_tools.sh` installs it into `target/tools/aws`, which
//! `scripts/test.sh` runs first; `MESH_CARGO_LAMBDA` names another).

mod common;
#[path = "common/s3.rs"]
mod s3;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    aws_tool, free_port, mesh_command, reference_vector, request_at, sdk_config, start_moto,
    wait_for_port,
};
use mesh_testing::cosine;
use serde_json::{json, Value};

const BUCKET: &str = "msp-intelligence-models";
/// The encoder the template's functions serve (its Globals' `MESH_EMBED_MODEL`), which the
/// bundle tests publish and load: all-MiniLM-L6-v2 stored as f16.
const ENCODER: &str = "all-minilm-l6-v2-f16";
/// The function's name in the emulator: a binary of the workspace.
const FUNCTION: &str = "bootstrap";

/// Text the threat agent judges CRITICAL ransomware by its documented rule.
const CRITICAL_THREAT: &str = "Ransomware outbreak: LockBit encrypted every file share on FS01 and left a ransom note \
     demanding bitcoin for the decryption key. The encryptor dropped C:\\Users\\Public\\svc.exe \
     (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08) and deleted the shadow copies.";

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn aws_env(command: &mut Command, s3_endpoint: &str) {
    command
        .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_S3", s3_endpoint)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
}

/// The Lambda runtime and Invoke APIs (`cargo lambda watch`) on a free port.
fn start_watch() -> (u16, Process) {
    let watch_port = free_port();
    let watch = Process(
        Command::new(aws_tool("MESH_CARGO_LAMBDA", "cargo-lambda"))
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(watch_port.to_string())
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda watch starts"),
    );
    wait_for_port(watch_port, "cargo lambda watch", Duration::from_secs(60));
    (watch_port, watch)
}

fn bootstrap_binary() -> PathBuf {
    // `MESH_BOOTSTRAP_BIN` runs another build of it (a release build, to measure cold starts).
    std::env::var_os("MESH_BOOTSTRAP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bootstrap")))
}

/// The agents of the function [`start_function`] starts (its `MESH_ONLY_AGENTS`).
const BUNDLE_FUNCTION_AGENTS: &str = "threat-intelligence,anomaly-detection";

/// A cold start: the bootstrap process serving `agents`, started against the runtime API of
/// `watch_port`.
fn start_function(
    watch_port: u16,
    s3_endpoint: &str,
    cache: &std::path::Path,
    agents: &str,
) -> Process {
    let mut command = Command::new(bootstrap_binary());
    aws_env(&mut command, s3_endpoint);
    command
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{watch_port}/.rt/{FUNCTION}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "msp-threat-intelligence")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("MESH_MODEL_SOURCE", format!("s3://{BUCKET}/bundle"))
        .env("MESH_EMBED_MODEL", ENCODER)
        .env("MESH_CACHE_DIR", cache)
        .env("MESH_STATE_DB", ":memory:")
        .env("MESH_ONLY_AGENTS", agents)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Process(command.spawn().expect("bootstrap starts"))
}

/// Starts the function and invokes `GET /health`: the process, the answer, and the time from
/// process start to the answer (the cold start, download included).
async fn cold_start(
    watch_port: u16,
    s3_endpoint: &str,
    cache: &std::path::Path,
    agents: &str,
) -> (Process, Value, Duration) {
    let started = Instant::now();
    let function = start_function(watch_port, s3_endpoint, cache, agents);
    let (status, health, _) = tokio::task::spawn_blocking(move || {
        invoke(watch_port, &rest_event("GET", "/health", None))
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{health}");
    (function, health, started.elapsed())
}

/// An API Gateway REST (v1) proxy event for stage `prod`.
fn rest_event(method: &str, path: &str, body: Option<&Value>) -> Value {
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Host": ["abc123.execute-api.us-east-1.amazonaws.com"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"proxy": path.trim_start_matches('/')},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.10"},
            "path": format!("/prod{path}"),
            "protocol": "HTTP/1.1",
            "requestId": uuid_like(path),
            "requestTimeEpoch": 1_795_644_000_000u64,
            "resourceId": "x1y2z3",
            "resourcePath": "/{proxy+}",
            "stage": "prod"
        },
        "body": body.map(Value::to_string),
        "isBase64Encoded": false
    })
}

fn uuid_like(seed: &str) -> String {
    format!("00000000-0000-4000-8000-{:012x}", seed.len())
}

/// Invokes the function through the Lambda Invoke API; returns what the function returned.
fn invoke_raw(watch_port: u16, event: &Value) -> Value {
    let (status, _, response) = request_at(
        watch_port,
        "POST",
        &format!("/2015-03-31/functions/{FUNCTION}/invocations"),
        &[("Content-Type", "application/json")],
        event.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "the Invoke API answered {status}: {response}");
    response
}

/// Invokes the function through the Lambda Invoke API; returns the proxy response's status
/// and JSON body, and how long the call took.
fn invoke(watch_port: u16, event: &Value) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = invoke_raw(watch_port, event);
    let took = started.elapsed();
    let code = response["statusCode"].as_u64().expect("a proxy response") as u16;
    let body = response["body"].as_str().unwrap_or_default();
    (
        code,
        serde_json::from_str(body).unwrap_or(Value::String(body.into())),
        took,
    )
}

/// `msp-mesh bundle push s3://BUCKET/bundle` of the workspace's prepared models, data and
/// caches to the S3 server at `s3_endpoint` (its files under `s3_root`).
async fn push_bundle(s3_root: &Path, s3_endpoint: &str) {
    let mut push = mesh_command(
        &format!("bundle push --model {ENCODER} s3://{BUCKET}/bundle"),
        &s3_root.join("partners.json"),
    );
    aws_env(&mut push, s3_endpoint);
    let output = tokio::task::spawn_blocking(move || push.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "bundle push failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_under_cargo_lambda_watch_serves_from_an_s3_bundle() {
    mesh_testing::require_local_model(ENCODER);
    let template = include_str!("../deploy/template.yaml");
    assert!(
        template.contains(&format!("MESH_EMBED_MODEL: {ENCODER}\n")),
        "the template's functions serve the encoder these tests bundle"
    );
    let s3_root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (s3_endpoint, gets) = s3::start_s3(s3_root.path(), BUCKET).await;

    // Publish the workspace's prepared models, data and caches.
    push_bundle(s3_root.path(), &s3_endpoint).await;
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(s3_root.path().join(BUCKET).join("bundle/bundle.json")).unwrap(),
    )
    .unwrap();
    let all = manifest["files"].as_array().unwrap();
    assert!(all.len() > 10, "{manifest}");
    // What this function's agents read, and the GETs that take: one per file, or one per
    // part of a file over PART_BYTES (parallel ranged GETs).
    let selection: mesh_agents::AgentSelection = BUNDLE_FUNCTION_AGENTS.parse().unwrap();
    let wanted: Vec<&Value> = all
        .iter()
        .filter(|f| {
            mesh_core::bundle::needed_by(&selection, true, ENCODER, f["path"].as_str().unwrap())
        })
        .collect();
    let files = wanted.len();
    assert!(files > 5 && files < all.len(), "{files} of {}", all.len());
    let part = mesh_inference::store::PART_BYTES;
    // A compressed file (large JSON) comes in one GET.
    let gzipped: Vec<&&Value> = wanted.iter().filter(|f| f["encoding"] == "gzip").collect();
    assert!(
        !gzipped.is_empty(),
        "the data sets are stored compressed: {manifest}"
    );
    for f in &gzipped {
        assert!(
            f["stored_size"].as_u64().unwrap() < f["size"].as_u64().unwrap(),
            "{f}"
        );
    }
    let object_gets: usize = wanted
        .iter()
        .map(|f| match f["encoding"] == "gzip" {
            true => 1,
            false => f["size"].as_u64().unwrap().div_ceil(part).max(1) as usize,
        })
        .sum();
    assert!(object_gets > files, "the encoder comes in parts");

    let (watch_port, watch) = start_watch();

    // Cold start: the first invocation waits for the download and the model load.
    let (function, health, cold) = cold_start(
        watch_port,
        &s3_endpoint,
        cache.path(),
        BUNDLE_FUNCTION_AGENTS,
    )
    .await;
    let bundle = &health["model_bundle"];
    assert_eq!(health["model_used"], format!("{ENCODER}@1"), "{health}");
    assert_eq!(bundle["files"], files, "{health}");
    assert_eq!(bundle["downloaded_files"], files, "{health}");
    assert_eq!(bundle["reused_files"], 0, "{health}");
    assert!(
        bundle["downloaded_bytes"].as_u64() < bundle["bytes"].as_u64(),
        "compressed files download fewer bytes than they take: {health}"
    );
    assert!(
        !health.to_string().contains(BUCKET) && bundle.get("root").is_none(),
        "/health names neither the bucket nor the cache folder: {health}"
    );
    let gets_after_cold_start = gets.load(Ordering::SeqCst);
    assert_eq!(
        gets_after_cold_start,
        object_gets + 1,
        "one GET per file or part, plus the manifest"
    );

    // Warm invocations: right answers, nothing downloaded.
    let warm = tokio::task::spawn_blocking(move || {
        let sentence =
            "The firewall blocked an inbound connection from a known malicious IP address.";
        let (status, embed, t1) = invoke(
            watch_port,
            &rest_event(
                "POST",
                "/embed",
                Some(&json!({"inputs": [sentence], "normalize": true})),
            ),
        );
        assert_eq!(status, 200, "{embed}");
        let vector: Vec<f32> = embed[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let similarity = cosine(&vector, &reference_vector(sentence));
        assert!(
            similarity >= 0.99999,
            "cosine to the reference {similarity}"
        );

        let (status, threat, t2) = invoke(
            watch_port,
            &rest_event(
                "POST",
                "/threat-intelligence/analyze",
                Some(&json!({"text": CRITICAL_THREAT})),
            ),
        );
        assert_eq!(status, 200, "{threat}");
        assert_eq!(threat["threat_type"], "ransomware", "{threat}");
        assert_eq!(threat["severity"], "CRITICAL", "{threat}");
        assert!(
            threat["model_used"]
                .as_str()
                .unwrap()
                .contains("threat-category-minilm@3"),
            "{threat}"
        );

        let values: Vec<f64> = (0..60)
            .map(|i| if i == 40 { 95.0 } else { 50.0 + (i % 5) as f64 })
            .collect();
        let (status, anomaly, t3) = invoke(
            watch_port,
            &rest_event("POST", "/anomaly/detect", Some(&json!({"values": values}))),
        );
        assert_eq!(status, 200, "{anomaly}");
        let spike = anomaly["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["index"] == 40)
            .unwrap_or_else(|| panic!("the spike at 40 is flagged: {anomaly}"));
        assert_eq!(spike["type"], "spike", "{anomaly}");

        // An agent this function does not serve answers 503 naming the reason.
        let (status, other, _) = invoke(
            watch_port,
            &rest_event(
                "POST",
                "/compliance/check",
                Some(&json!({"framework": "cis-v8", "policy_text": "All laptops are encrypted."})),
            ),
        );
        assert_eq!(status, 503, "{other}");
        assert!(other.to_string().contains("--only-agents"), "{other}");
        [t1, t2, t3]
    })
    .await
    .unwrap();
    assert_eq!(
        gets.load(Ordering::SeqCst),
        gets_after_cold_start,
        "warm invocations download nothing"
    );
    drop(function);

    // A second cold start on the same /tmp: every file verified and reused.
    let (_function, health, second_cold) = cold_start(
        watch_port,
        &s3_endpoint,
        cache.path(),
        BUNDLE_FUNCTION_AGENTS,
    )
    .await;
    assert_eq!(health["model_bundle"]["downloaded_files"], 0, "{health}");
    assert_eq!(health["model_bundle"]["reused_files"], files, "{health}");
    assert_eq!(
        gets.load(Ordering::SeqCst),
        gets_after_cold_start + 1,
        "only the manifest is read again"
    );
    eprintln!(
        "lambda: cold start {cold:?} with {} MB downloaded in {} ms; warm embed {:?}, \
         threat {:?}, anomaly {:?}; cold start from a warm /tmp {second_cold:?}",
        bundle["downloaded_bytes"].as_u64().unwrap() / 1_000_000,
        bundle["elapsed_ms"],
        warm[0],
        warm[1],
        warm[2]
    );
    drop(watch);
}

/// Cold start per function of the template (one agent each, plus the API function), each with
/// an empty `/tmp`, from a bundle in the local S3 server: process start to the first answer,
/// with the bytes each one downloads. Numeric functions download no encoder (client health its
/// models only, federated learning its data set only). Prints the table; the times are
/// measurements, not assertions (`MESH_BOOTSTRAP_BIN` runs a release build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_per_function_downloads_only_what_its_agents_read() {
    mesh_testing::require_local_model(ENCODER);
    let s3_root = tempfile::tempdir().unwrap();
    let (s3_endpoint, _gets) = s3::start_s3(s3_root.path(), BUCKET).await;
    push_bundle(s3_root.path(), &s3_endpoint).await;
    let (watch_port, _watch) = start_watch();
    let mut functions: Vec<&str> = mesh_agents::AgentKind::ALL
        .iter()
        .map(|k| k.cli_name())
        .collect();
    functions.push("none");
    let mut rows = Vec::new();
    for agents in functions {
        let cache = tempfile::tempdir().unwrap();
        let (function, health, cold) =
            cold_start(watch_port, &s3_endpoint, cache.path(), agents).await;
        let bundle = &health["model_bundle"];
        let bytes = bundle["downloaded_bytes"].as_u64().unwrap();
        let ms = bundle["elapsed_ms"].as_u64().unwrap();
        let numeric = mesh_agents::AgentKind::ALL
            .iter()
            .any(|k| k.cli_name() == agents && !k.is_language());
        if numeric {
            assert!(
                bytes < 5_000_000,
                "{agents} downloads {bytes} bytes: {health}"
            );
            assert!(
                health["model_used"].as_str().unwrap().starts_with("none"),
                "{agents} loads no encoder: {health}"
            );
        } else {
            assert!(bytes > 40_000_000, "{agents} needs the encoder: {health}");
        }
        rows.push(format!(
            "| {agents} | {} | {:.1} | {ms} | {:.0} | {:.2} |",
            bundle["downloaded_files"],
            bytes as f64 / 1e6,
            if ms > 0 {
                bytes as f64 / 1e6 / (ms as f64 / 1e3)
            } else {
                0.0
            },
            cold.as_secs_f64()
        ));
        drop(function);
    }
    eprintln!(
        "| function (MESH_ONLY_AGENTS) | files | MB downloaded | download ms | MB/s | cold start s |\n|---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
}

/// A WebSocket API (v1) event of `route` for connection `conn-1`.
fn websocket_event(route: &str, body: Option<&Value>) -> Value {
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    json!({
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": "conn-1",
            "domainName": "ws123.execute-api.us-east-1.amazonaws.com",
            "stage": "prod",
            "apiId": "ws123",
            "connectedAt": 1_795_644_000_000u64,
            "requestTimeEpoch": 1_795_644_000_000u64,
            "requestId": uuid_like(route),
            "messageDirection": "IN",
            "identity": {"sourceIp": "203.0.113.10"}
        },
        "isBase64Encoded": false,
        "body": body.map(Value::to_string)
    })
}

/// An SQS event of (message id, body) records from the async queue.
fn sqs_event(records: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795644000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:msp-async-processing",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Starts `bootstrap` in `mode` with the workspace's prepared models (no S3 bundle), only the
/// anomaly agent, and `env` added.
fn start_bootstrap(watch_port: u16, mode: &str, env: &[(&str, &str)]) -> Process {
    let models_dir = mesh_testing::workspace_models_dir();
    let mut command = Command::new(bootstrap_binary());
    command
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_REGION", "us-east-1")
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{watch_port}/.rt/{FUNCTION}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("msp-{mode}"))
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("MESH_MODE", mode)
        .env("MESH_MODELS_DIR", &models_dir)
        .env("MESH_DATA_DIR", mesh_testing::workspace_data_dir())
        .env("MESH_CACHE_DIR", models_dir.join(".cache"))
        .env("MESH_AUTO_PULL", "false")
        .env("MESH_ONLY_AGENTS", "anomaly-detection")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Process(command.spawn().expect("bootstrap starts"))
}

/// [`start_bootstrap`] with its state in moto's DynamoDB and the management API at `management`.
fn start_mode(watch_port: u16, mode: &str, moto: &str, management: &str) -> Process {
    start_bootstrap(
        watch_port,
        mode,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDMOTO"),
            ("AWS_SECRET_ACCESS_KEY", "moto-secret"),
            ("AWS_ENDPOINT_URL", moto),
            ("MESH_STATE_BACKEND", "aws"),
            ("MESH_WEBSOCKET_ENDPOINT", management),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_worker_functions_under_cargo_lambda_watch() {
    use mesh_core::store::StateStore;
    mesh_testing::require_local_model("all-minilm-l6-v2");
    let moto = start_moto();
    let store = Arc::new(
        mesh_core::store::DynamoStore::new(&sdk_config(&moto.endpoint), Default::default())
            .unwrap(),
    );
    let creating = store.clone();
    tokio::task::spawn_blocking(move || creating.create_tables().unwrap())
        .await
        .unwrap();
    let standin = Arc::new(mesh_standin::StandIn::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let management = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(mesh_standin::serve(listener, standin.clone()));
    let (watch_port, _watch) = start_watch();

    // The WebSocket API's function.
    let function = start_mode(watch_port, "websocket", &moto.endpoint, &management);
    let (store_ws, endpoint) = (store.clone(), moto.endpoint.clone());
    let stored_filters = tokio::task::spawn_blocking(move || {
        let (status, connected, _) = invoke(watch_port, &websocket_event("$connect", None));
        assert_eq!(status, 200, "{connected}");
        let ids: Vec<String> = store_ws
            .list_connections()
            .unwrap()
            .into_iter()
            .map(|c| c.connection_id)
            .collect();
        assert_eq!(ids, ["conn-1"], "stored in DynamoDB at {endpoint}");
        for body in [
            json!({"type": "subscribe", "data": {"event_types": ["alert"], "agents": ["threat-intelligence"]}}),
            json!({"type": "ping", "data": {"n": 7}}),
            json!({"type": "dance"}),
        ] {
            let (status, answer, _) = invoke(watch_port, &websocket_event("$default", Some(&body)));
            assert_eq!(status, 200, "{answer}");
        }
        let filters = store_ws.list_connections().unwrap()[0].filters.clone();
        let (status, _, _) = invoke(watch_port, &websocket_event("$disconnect", None));
        assert_eq!(status, 200);
        assert!(store_ws.list_connections().unwrap().is_empty());
        filters
    })
    .await
    .unwrap();
    drop(function);
    assert_eq!(stored_filters["event_types"], json!(["alert"]));
    assert_eq!(stored_filters["agents"], json!(["threat-intelligence"]));
    let posts = standin.calls_of("ApiGateway.PostToConnection");
    let replies: Vec<(&str, &str)> = posts
        .iter()
        .map(|c| {
            (
                c.body["connection_id"].as_str().unwrap(),
                c.body["data"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        replies,
        [
            ("conn-1", "subscription_confirmed"),
            ("conn-1", "pong"),
            ("conn-1", "error")
        ]
    );
    assert_eq!(posts[1].body["data"]["data"]["n"], 7);
    assert_eq!(posts[2].body["data"]["data"]["field"], "type");

    // The async worker's function: a batch of one job and one message that is not a job.
    let function = start_mode(watch_port, "worker", &moto.endpoint, &management);
    let values: Vec<f64> = (0..60)
        .map(|i| if i == 40 { 95.0 } else { 50.0 + (i % 5) as f64 })
        .collect();
    let job = json!({"job_id": "job-1", "agent": "anomaly-detection",
        "request": {"values": values}, "submitted_ms": 1_795_644_000_000u64});
    let job_text = job.to_string();
    let answer = tokio::task::spawn_blocking(move || {
        invoke_raw(
            watch_port,
            &sqs_event(&[("m-job", &job_text), ("m-poison", "not a job")]),
        )
    })
    .await
    .unwrap();
    drop(function);
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m-poison"}]})
    );
    let stored = tokio::task::spawn_blocking(move || store.get_result("job-1").unwrap())
        .await
        .unwrap()
        .expect("the job's answer is stored under its id");
    assert_eq!(stored.agent, "anomaly-detection");
    assert!(
        stored.data["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["index"] == 40 && a["type"] == "spike"),
        "{}",
        stored.data
    );
}

/// An API function of the language and numeric agents that keep user state, as one instance:
/// its own `cargo lambda watch` and `bootstrap` in HTTP mode, state in moto's DynamoDB.
fn start_instance(moto: &str) -> (u16, Process, Process) {
    let (port, watch) = start_watch();
    (port, watch, start_user_state_function(port, moto))
}

/// The `bootstrap` of [`start_instance`] (as the template configures an API function).
fn start_user_state_function(watch_port: u16, moto: &str) -> Process {
    start_bootstrap(
        watch_port,
        "http",
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDMOTO"),
            ("AWS_SECRET_ACCESS_KEY", "moto-secret"),
            ("AWS_ENDPOINT_URL", moto),
            ("MESH_STATE_BACKEND", "aws"),
            ("MESH_AUTH", "off"),
            (
                "MESH_ONLY_AGENTS",
                "client-health,partner-matching,federated-learning",
            ),
            ("MESH_PARTNERS_FILE", "/nonexistent/partners.json"),
        ],
    )
}

/// Two Lambda instances (two `cargo lambda watch`, two `bootstrap` processes) on the same moto
/// tables behave as one service: a model trained through one is served by the other, versions
/// included; partners loaded through one are matched by the other; both add to one privacy
/// total; and an instance started afresh (a cold start, empty `/tmp`) loses none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lambda_instances_share_user_state_in_dynamodb() {
    mesh_testing::require_local_model("all-minilm-l6-v2");
    let moto = start_moto();
    let store = mesh_core::store::DynamoStore::new(&sdk_config(&moto.endpoint), Default::default())
        .unwrap();
    tokio::task::spawn_blocking(move || store.create_tables().unwrap())
        .await
        .unwrap();
    let endpoint = moto.endpoint.clone();
    tokio::task::spawn_blocking(move || {
        let (a, _watch_a, function_a) = start_instance(&endpoint);
        let (b, _watch_b, _function_b) = start_instance(&endpoint);
        let call = |port: u16, method: &str, path: &str, body: Option<&Value>| {
            let (status, answer, _) = invoke(port, &rest_event(method, path, body));
            assert_eq!(status, 200, "{method} {path}: {answer}");
            answer
        };

        let records: Vec<Value> = (0..120)
            .map(|i| json!({"tickets": i % 12, "tier": if i % 4 == 0 {"gold"} else {"bronze"}, "left": if i % 12 >= 8 {"yes"} else {"no"}}))
            .collect();
        let train = json!({"records": records, "target": "left", "model_id": "lambda-toy"});
        let first = call(a, "POST", "/client-health/train", Some(&train));
        let second = call(b, "POST", "/client-health/train", Some(&train));
        assert_eq!(second["version"], first["version"].as_u64().unwrap() + 1);
        for (port, version) in [(b, &first["version"]), (a, &second["version"])] {
            let p = call(
                port,
                "POST",
                "/client-health/predict",
                Some(&json!({"model_id": "lambda-toy", "version": version, "features": {"tickets": 11, "tier": "bronze"}})),
            );
            assert!(p["churn_risk"].as_f64().unwrap() > 0.9, "{p}");
        }

        let partners = json!([
            {"msp_id": "p-hipaa", "name": "Harbor Health IT", "country": "US", "skills": ["compliance-hipaa", "healthcare-it"], "profile": "HIPAA compliance for clinics and hospitals"},
            {"msp_id": "p-cloud", "name": "Nimbus Ops", "country": "US", "skills": ["cloud-migration", "azure"], "profile": "Moves small businesses to Azure"}
        ]);
        let put = call(a, "PUT", "/collaboration/partners", Some(&partners));
        assert_eq!(put["count"], 2, "{put}");
        let m = call(
            b,
            "POST",
            "/collaboration/match",
            Some(&json!({"requirements": "HIPAA compliance partner for a hospital"})),
        );
        assert_eq!(m["partners_considered"], 2, "{m}");
        assert_eq!(m["matches"][0]["msp_id"], "p-hipaa", "{m}");

        let run = json!({"participating_msps": 3, "privacy_epsilon": 1.0, "rounds": 2, "local_steps": 2, "seed": 3});
        let r1 = call(a, "POST", "/federated/train", Some(&run));
        let r2 = call(b, "POST", "/federated/train", Some(&run));
        let spent = r1["privacy_budget_used"].as_f64().unwrap()
            + r2["privacy_budget_used"].as_f64().unwrap();
        let status = call(b, "GET", "/federated/status", None);
        assert_eq!(status["runs"], 2, "{status}");
        assert!((status["total_epsilon_spent"].as_f64().unwrap() - spent).abs() < 1e-9);

        // Instance A is replaced by a fresh process: nothing lived in it.
        drop(function_a);
        let fresh = start_user_state_function(a, &endpoint);
        let models = call(a, "GET", "/client-health/models", None);
        let toy = models["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model_id"] == "lambda-toy")
            .cloned()
            .unwrap_or_default();
        assert_eq!(toy["versions"], json!([first["version"], second["version"]]), "{models}");
        assert_eq!(call(a, "GET", "/collaboration/partners", None)["count"], 2);
        assert_eq!(call(a, "GET", "/federated/status", None)["runs"], 2);
        drop(fresh);
    })
    .await
    .unwrap();
}

/// The template's ten agent functions and the API and WebSocket functions, each its own
/// `cargo lambda watch` and `bootstrap` (as on AWS: one process per function), state in moto's
/// DynamoDB. `/agents/status` of the API function and `agent_status` of the WebSocket function
/// read `not_started` for every agent before the agent functions start, then each agent as
/// its own function stored it (model, function name, load time), and no function records an
/// agent it does not serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_true_in_the_ten_function_layout() {
    use mesh_core::store::StateStore;
    mesh_testing::require_local_model("all-minilm-l6-v2");
    let moto = start_moto();
    let store = mesh_core::store::DynamoStore::new(&sdk_config(&moto.endpoint), Default::default())
        .unwrap();
    let store = tokio::task::spawn_blocking(move || {
        store.create_tables().unwrap();
        store
    })
    .await
    .unwrap();
    let standin = Arc::new(mesh_standin::StandIn::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let management = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(mesh_standin::serve(listener, standin.clone()));
    let endpoint = moto.endpoint.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        let function = |name: &str, mode: &str, agents: &str| {
            let (port, watch) = start_watch();
            let process = start_bootstrap(
                port,
                mode,
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIDMOTO"),
                    ("AWS_SECRET_ACCESS_KEY", "moto-secret"),
                    ("AWS_ENDPOINT_URL", &endpoint),
                    ("AWS_LAMBDA_FUNCTION_NAME", name),
                    ("MESH_STATE_BACKEND", "aws"),
                    ("MESH_AUTH", "off"),
                    ("MESH_WEBSOCKET_ENDPOINT", &management),
                    ("MESH_ONLY_AGENTS", agents),
                ],
            );
            (port, watch, process)
        };
        let status = |port: u16| {
            let (code, status, _) = invoke(port, &rest_event("GET", "/agents/status", None));
            assert_eq!(code, 200, "{status}");
            status
        };
        let (api, _api_watch, _api) = function("msp-mesh-api", "http", "none");
        let before = status(api);
        let agents: Vec<(String, u16, Process, Process)> = mesh_agents::AgentKind::ALL
            .into_iter()
            .map(|kind| {
                let name = format!("msp-{}", kind.cli_name());
                let (port, watch, process) = function(&name, "http", kind.cli_name());
                (kind.cli_name().to_string(), port, watch, process)
            })
            .collect();
        // Each function's own view of its agent, once it answers (loaded and recorded).
        let own: Vec<(String, Value)> = agents
            .iter()
            .map(|(agent, port, _, _)| (agent.clone(), status(*port)["agents"][agent].clone()))
            .collect();
        let after = status(api);
        let (ws, _ws_watch, _ws) = function("msp-websocket", "websocket", "none");
        let (code, _, _) = invoke(ws, &websocket_event("$connect", None));
        assert_eq!(code, 200);
        let asked = json!({"type": "request_agent_status"});
        let (code, _, _) = invoke(ws, &websocket_event("$default", Some(&asked)));
        assert_eq!(code, 200);
        (before, own, after)
    })
    .await
    .unwrap();
    let (before, own, after) = statuses;
    for kind in mesh_agents::AgentKind::ALL {
        assert_eq!(
            before["agents"][kind.cli_name()]["status"],
            "not_started",
            "{before}"
        );
    }
    assert_eq!(own.len(), 10);
    for (agent, mine) in &own {
        let merged = &after["agents"][agent];
        assert_eq!(mine["status"], "active", "{agent}: {mine}");
        assert_eq!(merged["status"], "active", "{agent}: {merged}");
        assert_eq!(merged["model_used"], mine["model_used"], "{agent}");
        assert_eq!(merged["served_by"], format!("msp-{agent}"), "{merged}");
        assert!(merged["load_ms"].as_u64().is_some(), "{merged}");
    }
    assert_eq!(after["active_agents"], 10, "{after}");
    // Exactly one stored state per agent, from its own function.
    let records = tokio::task::spawn_blocking(move || store.latest_agent_states().unwrap())
        .await
        .unwrap();
    assert_eq!(records.len(), 10);
    for record in &records {
        assert_eq!(record.state["served_by"], format!("msp-{}", record.agent));
    }
    // The WebSocket function's `agent_status` is the same merged view.
    let posts = standin.calls_of("ApiGateway.PostToConnection");
    let pushed = posts
        .iter()
        .map(|c| &c.body["data"])
        .find(|d| d["type"] == "agent_status")
        .expect("agent_status pushed to the connection");
    for kind in mesh_agents::AgentKind::ALL {
        assert_eq!(
            pushed["data"]["agents"][kind.cli_name()]["status"],
            "active",
            "{pushed}"
        );
    }
}

/// One DynamoDB Streams call to moto (JSON protocol, unsigned as moto accepts it).
fn streams_call(moto_port: u16, action: &str, body: &Value) -> Value {
    let (status, _, answer) = request_at(
        moto_port,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.0"),
            ("X-Amz-Target", &format!("DynamoDBStreams_20120810.{action}")),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDMOTO/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            ),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{action}: {answer}");
    answer
}

/// Every record of the event log table's stream so far, as `GetRecords` gives them (the
/// shape of the Lambda event a DynamoDB event source mapping delivers).
/// The ARN of `table`'s DynamoDB stream.
async fn stream_arn_of(config: &aws_config::SdkConfig, table: &str) -> String {
    aws_sdk_dynamodb::Client::new(config)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .and_then(|t| t.latest_stream_arn)
        .unwrap_or_else(|| panic!("{table} has a stream"))
}

fn event_log_stream(moto_port: u16, stream_arn: &str) -> Value {
    let described = streams_call(
        moto_port,
        "DescribeStream",
        &json!({"StreamArn": stream_arn}),
    );
    let mut records = Vec::new();
    for shard in described["StreamDescription"]["Shards"].as_array().unwrap() {
        let iterator = streams_call(
            moto_port,
            "GetShardIterator",
            &json!({"StreamArn": stream_arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        );
        let got = streams_call(
            moto_port,
            "GetRecords",
            &json!({"ShardIterator": iterator["ShardIterator"]}),
        );
        records.extend(got["Records"].as_array().unwrap().iter().cloned());
    }
    json!({ "Records": records })
}

/// Events leave the request path: an agent function stores its result and events and answers,
/// with the same latency at 0 and at 100 open WebSocket connections (it pushes to none); the
/// broadcaster function, given the event log's DynamoDB stream, delivers every event to every
/// one of the 100 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_100_connections_off_the_request_path() {
    use mesh_core::store::{EventLog, StateStore};
    mesh_testing::require_local_model("all-minilm-l6-v2");
    let moto = start_moto();
    let config = sdk_config(&moto.endpoint);
    let store = mesh_core::store::DynamoStore::new(&config, Default::default()).unwrap();
    let store = tokio::task::spawn_blocking(move || {
        store.create_tables().unwrap();
        store
    })
    .await
    .unwrap();
    let stream_arn = stream_arn_of(&config, mesh_core::store::dynamo::EVENT_LOG_TABLE).await;
    let standin = Arc::new(mesh_standin::StandIn::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let management = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(mesh_standin::serve(listener, standin.clone()));
    let endpoint = moto.endpoint.clone();
    let moto_port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let standin_seen = standin.clone();
    let (latencies, delivered_events) = tokio::task::spawn_blocking(move || {
        let aws = |extra: &[(&'static str, String)]| {
            let mut env: Vec<(&'static str, String)> = vec![
                ("AWS_ACCESS_KEY_ID", "AKIDMOTO".into()),
                ("AWS_SECRET_ACCESS_KEY", "moto-secret".into()),
                ("AWS_ENDPOINT_URL", endpoint.clone()),
                ("MESH_STATE_BACKEND", "aws".into()),
                ("MESH_AUTH", "off".into()),
            ];
            env.extend(extra.iter().cloned());
            env
        };
        let start = |port: u16, mode: &str, env: Vec<(&'static str, String)>| {
            let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            start_bootstrap(port, mode, &pairs)
        };
        // The agent function, as the template configures it: no sink of its own.
        let (agent_port, _agent_watch) = start_watch();
        let _agent = start(agent_port, "http", aws(&[]));
        let series: Vec<f64> = (0..60)
            .map(|i| if i == 40 { 95.0 } else { 50.0 + (i % 5) as f64 })
            .collect();
        let request = json!({"values": series});
        let median_latency = |n: usize| {
            let mut took: Vec<Duration> = (0..n)
                .map(|_| {
                    let (status, answer, took) = invoke(
                        agent_port,
                        &rest_event("POST", "/anomaly/detect", Some(&request)),
                    );
                    assert_eq!(status, 200, "{answer}");
                    took
                })
                .collect();
            took.sort();
            took[n / 2]
        };
        let open_100 = || {
            for i in 0..100 {
                store
                    .put_connection(&mesh_core::store::ConnectionRecord {
                        connection_id: format!("conn-{i:03}"),
                        connected_at_ms: 1_000,
                        filters: json!({"event_types": [], "agents": [], "paused": false}),
                    })
                    .unwrap();
            }
        };
        median_latency(2); // warm
        let at_0 = median_latency(7);
        open_100();
        let at_100 = median_latency(7);
        // The event log grows with every request: 0 connections again tells its share apart.
        for i in 0..100 {
            store.remove_connection(&format!("conn-{i:03}")).unwrap();
        }
        let at_0_again = median_latency(7);
        open_100();
        assert!(
            standin_seen
                .calls_of("ApiGateway.PostToConnection")
                .is_empty(),
            "the agent function pushes to no connection"
        );
        // The broadcaster gets the stream's batch, as its event source mapping would give it.
        let (broadcast_port, _broadcast_watch) = start_watch();
        let _broadcaster = start(
            broadcast_port,
            "broadcast",
            aws(&[("MESH_WEBSOCKET_ENDPOINT", management.clone())]),
        );
        let batch = event_log_stream(moto_port, &stream_arn);
        let answer = invoke_raw(broadcast_port, &batch);
        assert_eq!(answer, json!({"batchItemFailures": []}));
        let logged = store.read_from(1, 1000).unwrap();
        ((at_0, at_100, at_0_again), logged)
    })
    .await
    .unwrap();
    let (at_0, at_100, at_0_again) = latencies;
    eprintln!(
        "agent request median latency: {:.1} ms at 0 connections, {:.1} ms at 100, {:.1} ms at 0 again",
        at_0.as_secs_f64() * 1e3,
        at_100.as_secs_f64() * 1e3,
        at_0_again.as_secs_f64() * 1e3
    );
    // 23 requests, each an `agent_result` (an anomaly alert or not, by the agent's rules).
    let offsets: Vec<i64> = delivered_events.iter().map(|e| e.offset).collect();
    assert!(offsets.len() >= 23, "{offsets:?}");
    let posts = standin.calls_of("ApiGateway.PostToConnection");
    for i in 0..100 {
        let id = format!("conn-{i:03}");
        let mut got: Vec<i64> = posts
            .iter()
            .filter(|c| c.body["connection_id"] == id.as_str())
            .map(|c| c.body["data"]["offset"].as_i64().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, offsets, "{id} got every event once");
    }
}

/// The WebSocket API's `$connect` authorizer as a function: the browser's key (sent as
/// `?api_key=`, handed over decoded by API Gateway) is allowed, any other denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_authorizer_checks_the_api_key_query_parameter() {
    let answers = tokio::task::spawn_blocking(|| {
        let (port, _watch) = start_watch();
        let _function = start_bootstrap(
            port,
            "authorizer",
            &[("MESH_API_KEYS", "k-1-0123456789abcdef,a+b= c-0123456789")],
        );
        ["a+b= c-0123456789", "k-1-0123456789abcdef", "k-2-0123456789abcdef", ""]
            .iter()
            .map(|key| {
                let event = json!({"type": "REQUEST",
                    "methodArn": "arn:aws:execute-api:us-east-1:123456789012:ws123/production/$connect",
                    "queryStringParameters": {"api_key": key},
                    "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c-1"}});
                invoke_raw(port, &event)["policyDocument"]["Statement"][0]["Effect"].clone()
            })
            .collect::<Vec<Value>>()
    })
    .await
    .unwrap();
    assert_eq!(
        answers,
        [json!("Allow"), json!("Allow"), json!("Deny"), json!("Deny")]
    );
}

/// The deployment template stood up on moto's CloudFormation (`scripts/stack_on_moto.py`:
/// SAM translated offline, the resource types moto cannot create left out and listed), then its
/// functions run as the stack configured them: each `bootstrap` gets its function's name and
/// environment as moto resolved them from the template (table, bucket and queue names of this
/// stack), with the workspace's prepared models instead of the S3 bundle (the cold-start tests
/// cover the bundle) and the management API stand-in for the skipped WebSocket API. Drives the
/// ten agent routes with the dashboard's example requests, reads every result back through the
/// API function, a job through the stack's SQS queue and the worker, a WebSocket subscription,
/// the broadcaster fed by the stack's event log stream, and a batch fan-out over the stack's
/// data bucket and batch function. A change to the template and a
/// change to the code must still fit together for this to pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_stands_up_on_moto_and_its_functions_work_together() {
    mesh_testing::require_local_model(ENCODER);
    let moto = start_moto();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/stack_on_moto.py");
    let output = Command::new(aws_tool("MESH_AWS_PYTHON", "python"))
        .arg(script)
        .arg(&moto.endpoint)
        .output()
        .expect("the stack script runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stack: Value = serde_json::from_slice(&output.stdout).unwrap();
    let skipped: std::collections::BTreeSet<&str> = stack["skipped"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    eprintln!(
        "stack on moto: {} resources created, {} left out, of types {skipped:?}",
        stack["resources"].as_object().unwrap().len(),
        stack["skipped"].as_object().unwrap().len()
    );
    // Every table the code uses is one the stack created.
    for table in [
        "AgentState",
        "AgentResults",
        "ThreatEvents",
        "NetworkIntelligence",
        "WebSocketConnections",
        "MeshEventLog",
        "MeshUserState",
    ] {
        assert!(
            stack["resources"]
                .as_object()
                .unwrap()
                .values()
                .any(|r| r["physical_id"] == table),
            "{table} is not in the stack"
        );
    }
    let standin = Arc::new(mesh_standin::StandIn::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let management = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(mesh_standin::serve(listener, standin.clone()));
    let endpoint = moto.endpoint.clone();
    let config = sdk_config(&moto.endpoint);
    let queue_url = stack["outputs"]["AsyncQueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let sqs = aws_sdk_sqs::Client::new(&config);

    // Start a function of the stack: its own watch and `bootstrap`, its environment.
    let start = {
        let (stack, endpoint, management) = (stack.clone(), endpoint.clone(), management.clone());
        move |logical: &str| -> (u16, Process, Process) {
            let function = &stack["functions"][logical];
            let mut env: Vec<(String, String)> = function["env"]
                .as_object()
                .unwrap_or_else(|| panic!("{logical} is a function of the stack"))
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "MESH_MODEL_SOURCE" | "RUST_LOG"))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            env.extend([
                ("AWS_ACCESS_KEY_ID".into(), "AKIDMOTO".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "moto-secret".into()),
                ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
                (
                    "AWS_LAMBDA_FUNCTION_NAME".into(),
                    function["function_name"].as_str().unwrap().into(),
                ),
                ("MESH_WEBSOCKET_ENDPOINT".into(), management.clone()),
            ]);
            let mode = env
                .iter()
                .find(|(k, _)| k == "MESH_MODE")
                .map_or("http".to_string(), |(_, v)| v.clone());
            let pairs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (port, watch) = start_watch();
            (port, watch, start_bootstrap(port, &mode, &pairs))
        }
    };
    let examples: Value = serde_json::from_str(include_str!("../../web/examples.json")).unwrap();
    let start_later = start.clone();
    let (broadcast_start, batch_start) = (start.clone(), start.clone());
    let run = tokio::task::spawn_blocking(move || {
        // The ten agent functions, each on its own route.
        let agents = [
            ("ThreatIntelligenceFunction", "/threat-intelligence/analyze"),
            ("MarketIntelligenceFunction", "/market-intelligence/analyze"),
            ("NlpQueryFunction", "/nlp-query/ask"),
            ("CollaborationFunction", "/collaboration/match"),
            ("ClientHealthFunction", "/client-health/predict"),
            ("RevenueFunction", "/revenue/forecast"),
            ("AnomalyFunction", "/anomaly/detect"),
            ("ComplianceFunction", "/compliance/check"),
            ("ResourceFunction", "/resource/optimize"),
            ("FederatedFunction", "/federated/train"),
        ];
        let mut answered = Vec::new();
        for (logical, route) in agents {
            let (port, _watch, _function) = start(logical);
            let request = &examples[route]["request"];
            let (status, answer, _) = invoke(port, &rest_event("POST", route, Some(request)));
            assert_eq!(status, 200, "{logical} {route}: {answer}");
            assert!(answer["model_used"].is_string(), "{answer}");
            answered.push((route, answer["result_id"].as_str().unwrap().to_string()));
        }
        // The API function reads them back from the stack's tables, and queues a job.
        let (api, _api_watch, _api_function) = start("MeshApiFunction");
        for (route, id) in &answered {
            let (status, stored, _) = invoke(api, &rest_event("GET", &format!("/results/{id}"), None));
            assert_eq!(status, 200, "{route}: {stored}");
        }
        let (_, agents_status, _) = invoke(api, &rest_event("GET", "/agents/status", None));
        assert_eq!(agents_status["active_agents"], 10, "{agents_status}");
        assert_eq!(
            agents_status["agents"]["threat-intelligence"]["served_by"],
            "msp-threat-intelligence"
        );
        let job = json!({"agent": "anomaly-detection", "request": examples["/anomaly/detect"]["request"]});
        let (status, queued, _) = invoke(api, &rest_event("POST", "/jobs", Some(&job)));
        assert_eq!(status, 202, "{queued}");
        let job_id = queued["job_id"].as_str().unwrap().to_string();
        (answered, api, job_id, _api_watch, _api_function)
    })
    .await
    .unwrap();
    let (answered, api, job_id, _api_watch, _api_function) = run;
    assert_eq!(answered.len(), 10);
    // The job, from the stack's queue to the worker function.
    let message = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .pop()
        .expect("the job is on the stack's queue");
    let body = message.body().unwrap().to_string();
    let job_id_check = job_id.clone();
    tokio::task::spawn_blocking(move || {
        let start = start_later;
        let (worker, _watch, _function) = start("AsyncWorkerFunction");
        let answer = invoke_raw(worker, &sqs_event(&[("m-1", &body)]));
        assert_eq!(answer, json!({"batchItemFailures": []}));
        let (status, done, _) = invoke(
            api,
            &rest_event("GET", &format!("/jobs/{job_id_check}"), None),
        );
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["status"], "done", "{done}");
        // A WebSocket client subscribes through the WebSocket function.
        let (ws, _ws_watch, _ws_function) = start("WebSocketFunction");
        let (status, _, _) = invoke(ws, &websocket_event("$connect", None));
        assert_eq!(status, 200);
        let subscribe = json!({"type": "subscribe", "data": {"event_types": ["agent_result"]}});
        let (status, _, _) = invoke(ws, &websocket_event("$default", Some(&subscribe)));
        assert_eq!(status, 200);
    })
    .await
    .unwrap();
    let posts = standin.calls_of("ApiGateway.PostToConnection");
    assert!(
        posts
            .iter()
            .any(|c| c.body["data"]["type"] == "subscription_confirmed"),
        "{posts:?}"
    );

    // The broadcaster, given the stack's event log stream as its event source mapping would
    // give it, pushes the subscribed connection the agents' results.
    let stream_arn = stream_arn_of(&config, "MeshEventLog").await;
    let moto_port: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        let (port, _watch, _function) = broadcast_start("BroadcastFunction");
        invoke_raw(port, &event_log_stream(moto_port, &stream_arn))
    })
    .await
    .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let pushed: Vec<Value> = standin
        .calls_of("ApiGateway.PostToConnection")
        .into_iter()
        .filter(|c| c.body["data"]["type"] == "agent_result")
        .map(|c| c.body)
        .collect();
    assert!(
        pushed.len() >= answered.len(),
        "every agent's result reached the subscribed connection: {pushed:?}"
    );

    // A batch fan-out: `msp-mesh score` splits a file in the stack's data bucket (under the
    // template's input prefix) into byte-range shards, each scored by the stack's batch
    // function, and writes the parts under the output prefix. The emulator knows a function
    // by its binary's name, so the driver invokes `bootstrap`.
    let data_bucket = stack["resources"]["DataBucket"]["physical_id"]
        .as_str()
        .expect("the stack's data bucket")
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("records.jsonl");
    common::anomaly_records(&input, 300);
    let s3 = mesh_inference::store::S3Store::new(
        mesh_inference::aws::s3_client(&config),
        data_bucket.clone(),
        String::new(),
        work.path().join("cache"),
    );
    s3.put_bytes("batch/input/records.jsonl", std::fs::read(&input).unwrap())
        .await
        .unwrap();
    let mut reference = mesh_command("score", &work.path().join("partners.json"));
    reference
        .args(["--agent", "anomaly-detection", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(work.path().join("reference.jsonl"));
    let (bucket, batch_endpoint) = (data_bucket.clone(), moto.endpoint.clone());
    let run = tokio::task::spawn_blocking(move || {
        assert!(reference.status().unwrap().success());
        let (port, _watch, _function) = batch_start("BatchScoreFunction");
        let mut driver = mesh_command("score", Path::new("/nonexistent/partners.json"));
        driver
            .args(["--agent", "anomaly-detection", "--input"])
            .arg(format!("s3://{bucket}/batch/input/records.jsonl"))
            .arg("--output")
            .arg(format!("s3://{bucket}/batch/output/smoke"))
            .args(["--fan-out-function", FUNCTION, "--shard-bytes", "8192"])
            .env("AWS_ACCESS_KEY_ID", "AKIDMOTO")
            .env("AWS_SECRET_ACCESS_KEY", "moto-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &batch_endpoint)
            .env(
                "AWS_ENDPOINT_URL_LAMBDA",
                format!("http://127.0.0.1:{port}"),
            )
            .env_remove("AWS_PROFILE");
        driver.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let manifest: Value = serde_json::from_slice(
        &s3.get_bytes("batch/output/smoke/manifest.json")
            .await
            .unwrap()
            .expect("the fan-out wrote its manifest"),
    )
    .unwrap();
    let finished = manifest["finished"].as_array().unwrap();
    assert!(finished.len() >= 4, "{manifest}");
    let mut scored = Vec::new();
    for i in 0..finished.len() {
        let part = s3
            .get_bytes(&format!("batch/output/smoke/part-{i:05}.jsonl"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("part {i} is in the output prefix"));
        scored.extend(answers_of(&String::from_utf8(part).unwrap()));
    }
    let expected =
        answers_of(&std::fs::read_to_string(work.path().join("reference.jsonl")).unwrap());
    assert_eq!(scored.len(), 300);
    assert_eq!(
        scored, expected,
        "the stack's batch function scores as a local run does"
    );
}

/// The answers of a JSON-lines file, without the per-call time stamp.
fn answers_of(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("timestamp");
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_fans_out_over_lambda_in_byte_range_shards() {
    const RECORDS: usize = 2_000;
    const SHARD_BYTES: u64 = 32 * 1024;
    mesh_testing::require_local_model("all-minilm-l6-v2");
    let root = tempfile::tempdir().unwrap();
    let (s3_endpoint, _) = s3::start_s3(root.path(), "batch").await;
    let bucket = root.path().join("batch");
    std::fs::create_dir_all(bucket.join("in")).unwrap();
    let input = bucket.join("in/records.jsonl");
    common::anomaly_records(&input, RECORDS);
    let input_bytes = std::fs::metadata(&input).unwrap().len();
    let shards = input_bytes.div_ceil(SHARD_BYTES) as usize;
    assert!(shards >= 8, "{shards} shards");

    // The reference: the same file scored locally.
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("reference.jsonl");
    let mut local = mesh_command("score", &work.path().join("partners.json"));
    local
        .args(["--agent", "anomaly-detection", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&reference);
    let status = tokio::task::spawn_blocking(move || local.status().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let expected = answers_of(&std::fs::read_to_string(&reference).unwrap());

    let (watch_port, _watch) = start_watch();
    let _function = start_bootstrap(
        watch_port,
        "score",
        &[
            ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY),
            ("AWS_ENDPOINT_URL_S3", &s3_endpoint),
            ("MESH_STATE_DB", ":memory:"),
        ],
    );
    let driver = move |shard_bytes: u64| {
        let mut command = mesh_command("score", Path::new("/nonexistent/partners.json"));
        command
            .args(["--agent", "anomaly-detection"])
            .args([
                "--input",
                "s3://batch/in/records.jsonl",
                "--output",
                "s3://batch/out",
            ])
            .args(["--fan-out-function", FUNCTION, "--concurrency", "4"])
            .args(["--shard-bytes", &shard_bytes.to_string()])
            .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_S3", &s3_endpoint)
            .env(
                "AWS_ENDPOINT_URL_LAMBDA",
                format!("http://127.0.0.1:{watch_port}"),
            )
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE");
        command.output().unwrap()
    };
    let parts = |bucket: &Path| -> Vec<Value> {
        (0..shards)
            .flat_map(|i| {
                answers_of(
                    &std::fs::read_to_string(bucket.join(format!("out/part-{i:05}.jsonl")))
                        .unwrap(),
                )
            })
            .collect()
    };
    let run = {
        let driver = driver.clone();
        tokio::task::spawn_blocking(move || driver(SHARD_BYTES))
            .await
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{shards} shards (0 finished by an earlier run")),
        "{stderr}"
    );
    assert_eq!(
        parts(&bucket),
        expected,
        "the parts in order are the local run's answers"
    );
    let manifest_path = bucket.join("out/manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let finished = manifest["finished"].as_array().unwrap();
    assert_eq!(finished.len(), shards);
    let records: u64 = finished
        .iter()
        .map(|d| d["records"].as_u64().unwrap())
        .sum();
    assert_eq!(records, RECORDS as u64);

    // Forget two shards (one part lost too): a rerun does only those.
    manifest["finished"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["index"] != 3 && d["index"] != 6);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    std::fs::remove_file(bucket.join("out/part-00003.jsonl")).unwrap();
    // s3s-fs keeps each object's checksum beside it; the manifest was edited behind its back.
    for entry in std::fs::read_dir(root.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".internal.json") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let rerun = {
        let driver = driver.clone();
        tokio::task::spawn_blocking(move || driver(SHARD_BYTES))
            .await
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{shards} shards ({} finished by an earlier run",
            shards - 2
        )),
        "{stderr}"
    );
    assert_eq!(parts(&bucket), expected);

    // The manifest of another shard size is refused, not mixed in.
    let other = tokio::task::spawn_blocking(move || driver(SHARD_BYTES * 2))
        .await
        .unwrap();
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("belongs to another run"));
}
