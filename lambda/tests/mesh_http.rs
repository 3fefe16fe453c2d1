//! The mesh's memory and pulse through the real server: results stored and read back, a
//! killed process that loses nothing it acknowledged, events and alerts on a WebSocket
//! (real client), measured status and metrics, API protection, and a bad-input suite over
//! every route.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mesh-{name}-{}", std::process::id()))
}

/// One server for the tests that share it, with its own state database.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let db = temp_path("shared.db");
        let _ = std::fs::remove_file(&db);
        Server::start(
            &temp_path("partners.json"),
            &["--state-db", db.to_str().unwrap()],
        )
    })
}

/// Text the threat agent judges CRITICAL by its documented rule: ransomware with high
/// confidence and a file hash.
const CRITICAL_THREAT: &str = "Ransomware outbreak: LockBit encrypted every file share on FS01 and left a ransom note \
     demanding bitcoin for the decryption key. The encryptor dropped C:\\Users\\Public\\svc.exe \
     (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08) and deleted the shadow copies.";

fn series() -> Value {
    let values: Vec<f64> = (0..60)
        .map(|i| if i == 40 { 95.0 } else { 50.0 + (i % 5) as f64 })
        .collect();
    json!({"values": values})
}

#[test]
fn results_are_stored_and_listed_by_agent_and_time() {
    let s = server();
    let before = s.get("/results?agent=anomaly-detection&limit=1000").1["count"]
        .as_u64()
        .unwrap();
    let since = mesh_core::store::now_ms();
    let (status, answer) = s.post("/anomaly/detect", &series());
    assert_eq!(status, 200, "{answer}");
    let id = answer["result_id"]
        .as_str()
        .expect("a result_id")
        .to_string();

    let (status, stored) = s.get(&format!("/results/{id}"));
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["agent"], "anomaly-detection");
    assert_eq!(stored["model_used"], answer["model_used"]);
    assert_eq!(stored["data"], answer, "the stored result is the answer");

    let (_, listed) = s.get("/results?agent=anomaly-detection&limit=1000");
    assert_eq!(listed["count"].as_u64().unwrap(), before + 1);
    let (_, window) = s.get(&format!("/results?since={since}&agent=anomaly-detection"));
    assert!(window["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["result_id"] == id.as_str()));
    let (_, empty) = s.get(&format!(
        "/results?until={since}&agent=anomaly-detection&limit=1000"
    ));
    assert!(!empty["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["result_id"] == id.as_str()));

    // The newest events hold the answer's, oldest first, and say where to read on from.
    let (status, newest) = s.get("/events?newest=true&limit=1000");
    assert_eq!(status, 200, "{newest}");
    let offsets: Vec<i64> = newest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_i64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert_eq!(newest["next_offset"], offsets.last().unwrap() + 1);
    assert!(newest["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["result_id"] == id.as_str()));

    let (status, missing) = s.get("/results/no-such-id");
    assert_eq!((status, missing["field"].as_str()), (404, Some("id")));
    for (query, field) in [
        ("/results?agent=wizard", "agent"),
        ("/results?since=yesterday", "since"),
        ("/results?limit=many", "query"),
        ("/threats?severity=apocalyptic", "severity"),
        ("/events?from=-3", "from"),
        ("/events?from=2&newest=true", "newest"),
    ] {
        let (status, body) = s.get(query);
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
}

/// Every acknowledged answer is stored on `server`, unchanged.
fn assert_all_stored(server: &Server, acknowledged: &[Value]) {
    for answer in acknowledged {
        let id = answer["result_id"].as_str().unwrap();
        let (status, stored) = server.get(&format!("/results/{id}"));
        assert_eq!(status, 200, "acknowledged result {id} lost: {stored}");
        assert_eq!(&stored["data"], answer);
    }
}

#[test]
fn a_killed_server_keeps_every_acknowledged_result() {
    let db = temp_path("restart.db");
    let _ = std::fs::remove_file(&db);
    let partners = temp_path("restart-partners.json");
    let args = ["--state-db", db.to_str().unwrap()];
    let first = Server::start(&partners, &args);
    let mut acknowledged = vec![];
    for _ in 0..5 {
        let (status, answer) = first.post("/anomaly", &series());
        assert_eq!(status, 200, "{answer}");
        acknowledged.push(answer);
    }
    let (_, events_before) = first.get("/events?from=1&limit=1000");
    // SIGKILL right after the last acknowledgement: no shutdown code runs.
    let port = first.port;
    first.kill();

    let second = Server::start_on(port, &partners, &args);
    assert_all_stored(&second, &acknowledged);
    let (_, events_after) = second.get("/events?from=1&limit=1000");
    assert_eq!(events_after["events"], events_before["events"]);
    let (_, status) = second.get("/agents/status");
    assert!(
        status["agents"]["anomaly-detection"]["last_activity"].is_string(),
        "last activity survives the restart: {status}"
    );
}

/// A result, its threat row and its events are one transaction: when the event log refuses
/// the write (a trigger here, a full disk in life), the caller gets an error and neither the
/// result nor the threat is stored; once the log takes writes again, all three are.
#[test]
fn an_answer_whose_event_cannot_be_stored_stores_nothing() {
    let db = temp_path("one-transaction.db");
    let _ = std::fs::remove_file(&db);
    let server = Server::start(
        &temp_path("one-transaction-partners.json"),
        &["--state-db", db.to_str().unwrap()],
    );
    let beside = rusqlite::Connection::open(&db).unwrap();
    beside
        .execute_batch(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events
             BEGIN SELECT RAISE(ABORT, 'the event log is full'); END;",
        )
        .unwrap();
    let threat = json!({"text": CRITICAL_THREAT});
    let (status, refused) = server.post("/threat-intelligence/analyze", &threat);
    assert_eq!(status, 500, "{refused}");
    assert_eq!(refused["error_type"], "storage", "{refused}");
    let (_, results) = server.get("/results?agent=threat-intelligence");
    assert_eq!(results["count"], 0, "{results}");
    let (_, threats) = server.get("/threats");
    assert_eq!(threats["count"], 0, "{threats}");

    beside.execute_batch("DROP TRIGGER refuse_events").unwrap();
    let (status, answer) = server.post("/threat-intelligence/analyze", &threat);
    assert_eq!(status, 200, "{answer}");
    let id = answer["result_id"].as_str().unwrap();
    let (_, results) = server.get("/results?agent=threat-intelligence");
    assert_eq!(results["count"], 1, "{results}");
    let (_, threats) = server.get("/threats");
    assert_eq!(threats["threats"][0]["threat_id"], id, "{threats}");
    let (_, events) = server.get("/events?from=1&limit=100");
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["result_id"] == id),
        "{events}"
    );
}

/// kill -9 under load: 32 clients post as fast as they can, the server is SIGKILLed while
/// their requests are in flight, and after a restart every answer given with a 200 is stored,
/// unchanged. The store reports WAL and synchronous=FULL, which this depends on for power cuts
/// (a process kill alone leaves the page cache to the kernel).
#[test]
fn a_server_killed_under_load_keeps_every_acknowledged_result() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let db = temp_path("load-kill.db");
    let _ = std::fs::remove_file(&db);
    let partners = temp_path("load-kill-partners.json");
    let args = [
        "--state-db",
        db.to_str().unwrap(),
        "--only-agents",
        "anomaly-detection",
    ];
    let first = Server::start(&partners, &args);
    let (_, health) = first.get("/health");
    assert_eq!(health["state_store"]["journal_mode"], "wal", "{health}");
    assert_eq!(health["state_store"]["synchronous"], "full", "{health}");
    let port = first.port;
    let acknowledged = Arc::new(Mutex::new(Vec::<Value>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let body = series().to_string();
    let writers: Vec<_> = (0..32)
        .map(|_| {
            let (acknowledged, stop, body) = (acknowledged.clone(), stop.clone(), body.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let json = [("Content-Type", "application/json")];
                    match common::try_request_at(
                        port,
                        "POST",
                        "/anomaly/detect",
                        &json,
                        body.as_bytes(),
                    ) {
                        Some((200, _, answer)) => acknowledged.lock().unwrap().push(answer),
                        Some(_) => {}
                        None => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill(); // SIGKILL with 32 requests in flight
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.join();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let second = Server::start_on(port, &partners, &args);
    assert_all_stored(&second, &acknowledged);
    eprintln!("{} acknowledged results, all kept", acknowledged.len());
}

/// Two servers on one state file behave as one service: a model trained through one is
/// served by the other (versions included), partners loaded through one are matched by the
/// other, both add to one privacy total, and a killed instance loses none of it.
#[test]
fn two_instances_share_what_users_give_them() {
    let db = temp_path("two-instances.db");
    let _ = std::fs::remove_file(&db);
    let partners = temp_path("two-instances-partners.json");
    let args = ["--state-db", db.to_str().unwrap()];
    let a = Server::start(&partners, &args);
    let b = Server::start(&partners, &args);

    // Client health: trained twice through A, each version served by B.
    let records: Vec<Value> = (0..120)
        .map(|i| json!({"tickets": i % 12, "tier": if i % 4 == 0 {"gold"} else {"bronze"}, "left": if i % 12 >= 8 {"yes"} else {"no"}}))
        .collect();
    let train = json!({"records": records, "target": "left", "model_id": "shared-toy"});
    let (s, first) = a.post("/client-health/train", &train);
    assert_eq!(s, 200, "{first}");
    let (s, second) = b.post("/client-health/train", &train);
    assert_eq!(s, 200, "{second}");
    assert_eq!(
        second["version"].as_u64().unwrap(),
        first["version"].as_u64().unwrap() + 1,
        "versions are numbered across instances"
    );
    for (server, version) in [(&b, &first["version"]), (&a, &second["version"])] {
        let (s, p) = server.post(
            "/client-health/predict",
            &json!({"model_id": "shared-toy", "version": version, "features": {"tickets": 11, "tier": "bronze"}}),
        );
        assert_eq!(s, 200, "{p}");
        assert!(p["churn_risk"].as_f64().unwrap() > 0.9, "{p}");
    }

    // Partners: replaced through A, matched through B.
    let directory = "msp_id,name,city,region,country,skills,certifications,employees,profile\n\
        p-hipaa,Harbor Health IT,Boston,MA,US,compliance-hipaa;healthcare-it,,40,HIPAA compliance for clinics and hospitals\n\
        p-cloud,Nimbus Ops,Austin,TX,US,cloud-migration;azure,,25,Moves small businesses to Azure\n";
    let (s, put) = a.http("PUT", "/collaboration/partners", "text/csv", directory);
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["count"], 2);
    let (s, m) = b.post(
        "/collaboration/match",
        &json!({"requirements": "HIPAA compliance partner for a hospital", "top_k": 5}),
    );
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["sample_data"], false, "{m}");
    assert_eq!(m["partners_considered"], 2, "{m}");
    assert_eq!(m["matches"][0]["msp_id"], "p-hipaa", "{m}");

    // Federated: one run through each, one privacy total.
    let run = json!({"participating_msps": 3, "privacy_epsilon": 1.0, "rounds": 2, "local_steps": 2, "seed": 3});
    let (s, r1) = a.post("/federated/train", &run);
    assert_eq!(s, 200, "{r1}");
    let (s, r2) = b.post("/federated/train", &run);
    assert_eq!(s, 200, "{r2}");
    let spent =
        r1["privacy_budget_used"].as_f64().unwrap() + r2["privacy_budget_used"].as_f64().unwrap();
    let (_, status) = a.get("/federated/status");
    assert_eq!(status["runs"], 2, "{status}");
    assert!(
        (status["total_epsilon_spent"].as_f64().unwrap() - spent).abs() < 1e-9,
        "{status}"
    );
    assert_eq!(status["latest"]["run_id"], r2["run_id"], "{status}");

    // A killed instance and a restarted one lose nothing.
    let port = a.port;
    a.kill();
    drop(b);
    let again = Server::start_on(port, &partners, &args);
    let (_, models) = again.get("/client-health/models");
    let shared = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_id"] == "shared-toy")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        shared["versions"],
        json!([first["version"], second["version"]]),
        "{models}"
    );
    let (_, listed) = again.get("/collaboration/partners");
    assert_eq!(listed["count"], 2, "{listed}");
    let (_, status) = again.get("/federated/status");
    assert_eq!(status["runs"], 2, "{status}");
    assert!(
        !partners.exists(),
        "changes go to the state store, never to the seed file"
    );
}

/// Split into functions (here: two servers on one state file), status is true: the process
/// that serves no agent reports the agents of the one that does from its stored state, with
/// that process's name, model and load time, and the agents nobody serves as `not_started`.
#[test]
fn status_split_across_processes_reports_who_serves_what() {
    let db = temp_path("split-status.db");
    let _ = std::fs::remove_file(&db);
    let partners = temp_path("split-status-partners.json");
    let state = ["--state-db", db.to_str().unwrap()];
    let anomaly = Server::start(
        &partners,
        &[&state[..], &["--only-agents", "anomaly-detection"]].concat(),
    );
    let api = Server::start(
        &partners,
        &[&state[..], &["--only-agents", "none"]].concat(),
    );
    let (_, own) = anomaly.get("/agents/status");
    let (_, merged) = api.get("/agents/status");
    let served = &merged["agents"]["anomaly-detection"];
    assert_eq!(served["status"], "active", "{merged}");
    assert_eq!(served["model_loaded"], true);
    assert_eq!(
        served["model_used"], own["agents"]["anomaly-detection"]["model_used"],
        "{merged}"
    );
    assert_eq!(
        served["served_by"], own["agents"]["anomaly-detection"]["served_by"],
        "{merged}"
    );
    assert!(served["load_ms"].as_u64().is_some(), "{served}");
    assert!(served["heartbeat"].is_string(), "{served}");
    for agent in [
        "threat-intelligence",
        "revenue-forecasting",
        "federated-learning",
    ] {
        assert_eq!(merged["agents"][agent]["status"], "not_started", "{merged}");
        // The anomaly process does not claim the agents it does not serve either.
        assert_eq!(own["agents"][agent]["status"], "not_started", "{own}");
    }
    assert_eq!(merged["active_agents"], 1, "{merged}");
}

#[test]
fn websocket_gets_the_event_and_the_critical_alert_within_100_ms() {
    let s = server();
    let port = s.port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
            .await
            .expect("WebSocket connects");
        ws.send(Message::Text(
            json!({"type": "subscribe", "data": {"event_types": ["agent_result", "alert"], "agents": ["threat-intelligence"]}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        let confirmed = next_json(&mut ws).await;
        assert_eq!(confirmed["type"], "subscription_confirmed", "{confirmed}");

        // Timestamp every message as it arrives, while the HTTP call runs.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = ws.next().await {
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if tx.send((Instant::now(), v)).is_err() {
                    break;
                }
            }
        });
        let sent = Instant::now();
        let (status, answer) = tokio::task::spawn_blocking(|| {
            server().post("/threat-intelligence/analyze", &json!({"text": CRITICAL_THREAT}))
        })
        .await
        .unwrap();
        let answered = Instant::now();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["severity"], "CRITICAL", "{answer}");
        let id = answer["result_id"].as_str().unwrap().to_string();

        let (mut event_at, mut alert_at) = (None, None);
        while event_at.is_none() || alert_at.is_none() {
            let (at, m) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("event and alert arrive")
                .unwrap();
            if m["result_id"] != id.as_str() {
                continue;
            }
            match m["type"].as_str() {
                Some("agent_result") => {
                    assert_eq!(m["data"], answer, "the event carries the stored answer");
                    assert!(m["offset"].as_i64().unwrap() > 0);
                    event_at = Some(at);
                }
                Some("alert") => {
                    assert_eq!(m["data"]["severity"], "CRITICAL");
                    assert_eq!(m["data"]["rule"], "threat_severity_high_or_critical");
                    alert_at = Some(at);
                }
                other => panic!("unexpected message {other:?}: {m}"),
            }
        }
        reader.abort();
        let after = |t: Instant| t.saturating_duration_since(answered);
        let (event_lag, alert_lag) = (after(event_at.unwrap()), after(alert_at.unwrap()));
        eprintln!(
            "ws: request took {:?}; event {:?} and alert {:?} after the HTTP answer (0 = before it)",
            answered - sent,
            event_lag,
            alert_lag
        );
        assert!(event_lag <= Duration::from_millis(100), "{event_lag:?}");
        assert!(alert_lag <= Duration::from_millis(100), "{alert_lag:?}");

        // The alert is also a stored threat event, queryable by severity and time.
        let (_, threats) = tokio::task::spawn_blocking(|| server().get("/threats?severity=critical"))
            .await
            .unwrap();
        assert!(threats["threats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["threat_id"] == id.as_str()));
    });
}

async fn next_json<S>(ws: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message")
            .expect("open")
            .expect("no error");
        if let Message::Text(text) = m {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

#[test]
fn websocket_answers_ping_and_agent_status() {
    let port = server().port;
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
                .await
                .unwrap();
            ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
                .await
                .unwrap();
            assert_eq!(next_json(&mut ws).await["type"], "pong");
            ws.send(Message::Text(r#"{"type":"request_agent_status"}"#.into()))
                .await
                .unwrap();
            let status = next_json(&mut ws).await;
            assert_eq!(status["type"], "agent_status");
            assert_eq!(status["data"]["total_agents"], 10);
            assert!(status["data"]["websocket_connections"].as_i64().unwrap() >= 1);
        });
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[test]
fn status_and_metrics_count_what_happened() {
    let s = server();
    let (_, before) = s.get("/agents/status");
    let requests = |v: &Value| {
        v["agents"]["resource-allocation"]["requests"]
            .as_u64()
            .unwrap()
    };
    let client_errors = |v: &Value| {
        v["agents"]["resource-allocation"]["client_errors"]
            .as_u64()
            .unwrap()
    };
    let body = json!({
        "tasks": [{"id": "t1", "skill": "network", "priority": "high", "estimated_hours": 2}],
        "technicians": [{"id": "a", "skills": ["network"], "capacity_hours": 8}]
    });
    for _ in 0..3 {
        let (status, v) = s.post("/resource/optimize", &body);
        assert_eq!(status, 200, "{v}");
    }
    let (status, _) = s.post("/resource", &json!({"tasks": "none"}));
    assert_eq!(status, 422);
    let (_, after) = s.get("/agents/status");
    assert!(requests(&after) >= requests(&before) + 4);
    assert!(client_errors(&after) > client_errors(&before));
    let agent = &after["agents"]["resource-allocation"];
    assert_eq!(agent["model_loaded"], true);
    assert_eq!(agent["status"], "active");
    let (p50, p95) = (
        agent["p50_latency_ms"].as_f64().unwrap(),
        agent["p95_latency_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p95 >= p50, "{agent}");
    assert!(agent["last_activity"].is_string());
    assert_eq!(after["total_agents"], 10);
    assert_eq!(
        after["active_agents"].as_u64().unwrap(),
        after["agents"]
            .as_object()
            .unwrap()
            .values()
            .filter(|a| a["model_loaded"] == true)
            .count() as u64
    );

    let (status, head, text) = s.request("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/plain; version=0.0.4"));
    let text = text.as_str().unwrap();
    let ok = metric(
        text,
        "mesh_agent_requests_total{agent=\"resource-allocation\",class=\"2xx\"} ",
    );
    assert!(ok >= 3.0, "{text}");
    assert!(text.contains("# TYPE mesh_agent_request_duration_seconds summary"));
    assert!(
        metric(
            text,
            "mesh_agent_request_duration_seconds{agent=\"resource-allocation\",quantile=\"0.5\"} "
        ) > 0.0
    );
    assert_eq!(
        metric(
            text,
            "mesh_agent_model_loaded{agent=\"resource-allocation\"} "
        ),
        1.0
    );
}

/// How much `agent`'s `series` grew from `before` to `after` (two `/metrics/history` answers),
/// minute by minute: a minute's count only grows, and the window may have moved on.
fn history_growth(before: &Value, after: &Value, agent: &str, series: &str) -> u64 {
    let counts = |v: &Value| -> std::collections::HashMap<String, u64> {
        let minutes = v["minutes"].as_array().unwrap();
        let values = v["agents"][agent][series].as_array().unwrap();
        assert_eq!(minutes.len(), values.len());
        minutes
            .iter()
            .zip(values)
            .map(|(m, n)| (m.as_str().unwrap().to_string(), n.as_u64().unwrap()))
            .collect()
    };
    let (was, now) = (counts(before), counts(after));
    now.iter()
        .map(|(minute, n)| n - was.get(minute).copied().unwrap_or(0))
        .sum()
}

#[test]
fn metrics_history_counts_requests_errors_and_alerts_per_minute() {
    let s = server();
    let (status, before) = s.get("/metrics/history?minutes=5");
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["minutes"].as_array().unwrap().len(), 5);
    assert_eq!(before["bucket_seconds"], 60);
    for _ in 0..2 {
        let (status, v) = s.post(
            "/threat-intelligence/analyze",
            &json!({"text": CRITICAL_THREAT}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["severity"], "CRITICAL", "{v}");
    }
    let (status, _) = s.post("/threat-intelligence/analyze", &json!({"text": 7}));
    assert_eq!(status, 422);
    let (_, after) = s.get("/metrics/history?minutes=5");
    let agent = "threat-intelligence";
    assert!(
        history_growth(&before, &after, agent, "requests") >= 3,
        "{after}"
    );
    assert!(
        history_growth(&before, &after, agent, "errors") >= 1,
        "{after}"
    );
    // Each CRITICAL threat raises the threat alert.
    assert!(
        history_growth(&before, &after, agent, "alerts") >= 2,
        "{after}"
    );
    // The newest minute is now's.
    let newest = after["minutes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap();
    let newest_ms = mesh_core::store::parse_time_bound(newest).unwrap();
    assert!(
        (0..60_000).contains(&(mesh_core::store::now_ms() - newest_ms)),
        "{newest}"
    );

    for bad in ["minutes=0", "minutes=1441", "minutes=soon"] {
        let (status, body) = s.get(&format!("/metrics/history?{bad}"));
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(
            body.to_string().contains("minutes") || body.to_string().contains("query"),
            "{bad}: {body}"
        );
    }
}

/// A route with a body that has a field of the wrong type and one that lacks a required field.
struct RouteCase {
    path: &'static str,
    wrong_type: Value,
    missing: Option<Value>,
    empty_array: Option<Value>,
    /// The field the three bodies above get wrong.
    field: &'static str,
    /// Bodies up to 64 MiB (data routes) rather than 2 MiB.
    data_route: bool,
}

fn route_cases() -> Vec<RouteCase> {
    let case = |path, wrong_type, missing, empty_array, field, data_route| RouteCase {
        path,
        wrong_type,
        missing,
        empty_array,
        field,
        data_route,
    };
    vec![
        case(
            "/threat-intelligence/analyze",
            json!({"text": 5}),
            Some(json!({})),
            None,
            "text",
            false,
        ),
        case(
            "/market-intelligence/analyze",
            json!({"query": [1]}),
            Some(json!({})),
            None,
            "query",
            false,
        ),
        case(
            "/nlp-query/ask",
            json!({"query": {"q": 1}}),
            Some(json!({})),
            None,
            "query",
            false,
        ),
        case(
            "/collaboration/match",
            json!({"requirements": true}),
            Some(json!({})),
            None,
            "requirements",
            false,
        ),
        case(
            "/compliance/check",
            json!({"framework": "cis", "policy_text": 7}),
            Some(json!({"framework": "cis"})),
            None,
            "policy_text",
            false,
        ),
        case(
            "/anomaly/detect",
            json!({"values": "abc"}),
            Some(json!({})),
            Some(json!({"values": []})),
            "values",
            true,
        ),
        case(
            "/revenue/forecast",
            json!({"history": {"a": 1}}),
            Some(json!({})),
            Some(json!({"history": []})),
            "history",
            true,
        ),
        case(
            "/resource/optimize",
            json!({"tasks": 3}),
            None,
            None,
            "tasks",
            false,
        ),
        case(
            "/client-health/predict",
            json!({"features": 5}),
            None,
            None,
            "features",
            false,
        ),
        case(
            "/client-health/train",
            json!({"records": 1, "target": "churn"}),
            Some(json!({"target": "churn"})),
            Some(json!({"records": [], "target": "churn"})),
            "records",
            true,
        ),
        case(
            "/federated/train",
            json!({"privacy_epsilon": "high"}),
            None,
            None,
            "privacy_epsilon",
            false,
        ),
        case(
            "/embed",
            json!({"inputs": 5}),
            Some(json!({})),
            Some(json!({"inputs": []})),
            "inputs",
            false,
        ),
    ]
}

fn assert_json_4xx(what: &str, status: u16, body: &Value) {
    assert!(
        (400..500).contains(&status),
        "{what}: status {status}, body {body}"
    );
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()) && body["error_type"].is_string(),
        "{what}: not a JSON error: {body}"
    );
}

#[test]
fn every_route_answers_bad_input_with_a_json_4xx_and_stays_healthy() {
    let s = server();
    let nested = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    for c in route_cases() {
        let json_post = |what: &str, body: &[u8]| {
            let (status, _, v) = s.request(
                "POST",
                c.path,
                &[("Content-Type", "application/json")],
                body,
            );
            assert_json_4xx(&format!("{} {what}", c.path), status, &v);
            (status, v)
        };
        let named = |what: &str, body: &Value| {
            let (_, v) = json_post(what, body.to_string().as_bytes());
            assert_eq!(v["field"], c.field, "{} {what}: {v}", c.path);
        };
        named("wrong type", &c.wrong_type);
        if let Some(missing) = &c.missing {
            named("missing field", missing);
        }
        if let Some(empty) = &c.empty_array {
            named("empty array", empty);
        }
        json_post("not JSON", b"{\"text\": ");
        json_post("not an object", b"[1, 2, 3]");
        json_post("NaN", format!("{{\"{}\": [1, NaN]}}", c.field).as_bytes());
        json_post(
            "infinity",
            format!("{{\"{}\": [1, Infinity]}}", c.field).as_bytes(),
        );
        json_post(
            "overflowing number",
            format!("{{\"{}\": [1e999]}}", c.field).as_bytes(),
        );
        json_post("invalid UTF-8", b"{\"text\": \"\xff\xfe\xfd\"}");
        json_post("deep nesting", nested.as_bytes());
        let (status, v) = json_post(
            "10 MB body",
            format!("{{\"{}\": \"{ten_mb}\"}}", c.field).as_bytes(),
        );
        if c.data_route {
            assert_eq!(
                (status, v["field"].as_str()),
                (422, Some(c.field)),
                "{}: {v}",
                c.path
            );
        } else {
            assert_eq!(
                (status, v["field"].as_str()),
                (413, Some("body")),
                "{}: {v}",
                c.path
            );
        }
        let (status, _, v) = s.request("POST", c.path, &[("Content-Type", "text/plain")], b"hello");
        assert_json_4xx(&format!("{} wrong content type", c.path), status, &v);
        assert_eq!(status, 415);
    }
    // Huge arrays past a route's limit.
    let inputs: Vec<String> = (0..10_000).map(|i| format!("text {i}")).collect();
    let (status, v) = s.post("/embed", &json!({ "inputs": inputs }));
    assert_json_4xx("/embed 10,000 inputs", status, &v);
    assert_eq!((status, v["field"].as_str()), (413, Some("inputs")));
    // Numbers that are valid JSON but extreme.
    let (status, v) = s.post(
        "/anomaly/detect",
        &json!({"values": [1e308, -1e308, 1e308, 0, 1, 2, 3, 4, 5, 6]}),
    );
    assert!(
        status == 200 || (400..500).contains(&status),
        "{status}: {v}"
    );
    let (status, v) = s.post(
        "/revenue/forecast",
        &json!({"history": [1e308, 1e308, 1e308, 1e308, 1e308, 1e308, 1e308, 1e308, 1e308, 1e308]}),
    );
    assert!(
        status == 200 || (400..500).contains(&status),
        "{status}: {v}"
    );
    // Unknown routes and methods get JSON too.
    let (status, v) = s.get("/no/such/route");
    assert_json_4xx("unknown route", status, &v);
    assert_eq!(status, 404);
    let (status, v) = s.get("/anomaly/detect");
    assert_json_4xx("wrong method", status, &v);
    assert_eq!(status, 405);
    // Still healthy.
    let (status, v) = s.get("/health");
    assert_eq!((status, v["status"].as_str()), (200, Some("healthy")));
}

#[test]
fn api_keys_rate_limit_inflight_bound_and_cors() {
    let keys = temp_path("keys");
    std::fs::write(&keys, "# test keys\nfile-key-0123456789\n").unwrap();
    let s = Server::start(
        &temp_path("protected-partners.json"),
        &[
            "--agents",
            "false",
            "--state-db",
            ":memory:",
            "--api-keys",
            "env-key-1-0123456789,env-key-2-0123456789",
            "--api-keys-file",
            keys.to_str().unwrap(),
            "--rate-limit-per-second",
            "1",
            "--rate-limit-burst",
            "6",
            "--max-inflight",
            "1",
            "--cors-origins",
            "http://dashboard.local",
            "--failed-auth-per-minute",
            "3",
        ],
    );
    let embed = |key: Option<&str>, texts: usize| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(k) = key {
            headers.push(("x-api-key", k));
        }
        let long = "The backup job on the file server failed again overnight. ".repeat(30);
        let inputs: Vec<&str> = (0..texts).map(|_| long.as_str()).collect();
        let body = json!({ "inputs": inputs }).to_string();
        s.request("POST", "/embed", &headers, body.as_bytes())
    };
    // Health is open; everything else needs a key.
    assert_eq!(s.get("/health").0, 200);
    let (status, _, v) = embed(None, 1);
    assert_eq!(
        (status, v["error_type"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, v) = embed(Some("not-a-key"), 1);
    assert_eq!(
        (status, v["error_type"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(embed(Some("env-key-2-0123456789"), 1).0, 200);
    assert_eq!(embed(Some("file-key-0123456789"), 1).0, 200);

    // Burst of 6 for env-key-2-0123456789 (one used above): five more pass, then 429 with retry-after.
    let mut statuses = vec![];
    for _ in 0..7 {
        let (status, head, v) = s.request(
            "GET",
            "/openapi.json",
            &[("x-api-key", "env-key-2-0123456789")],
            b"",
        );
        if status == 429 {
            assert_eq!(v["error_type"], "rate_limited");
            assert!(head.to_ascii_lowercase().contains("retry-after:"));
        }
        statuses.push(status);
    }
    let passed = statuses.iter().take_while(|s| **s == 200).count();
    assert!((5..=6).contains(&passed), "{statuses:?}");
    assert_eq!(statuses[passed], 429, "{statuses:?}");

    // One model request at a time: concurrent ones beyond it are refused at once.
    let outcomes: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let (status, _, v) = embed(Some("env-key-1-0123456789"), 32);
                    (status, v)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = outcomes.iter().filter(|(s, _)| *s == 429).collect();
    assert!(ok >= 1 && !refused.is_empty(), "{outcomes:?}");
    assert!(refused.iter().all(|(_, v)| v["error_type"] == "overloaded"));

    // CORS preflight for the configured origin.
    let (status, head, _) = s.request(
        "OPTIONS",
        "/embed",
        &[
            ("Origin", "http://dashboard.local"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "x-api-key,content-type"),
        ],
        b"",
    );
    assert_eq!(status, 200, "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("access-control-allow-origin: http://dashboard.local"));

    // Wrong keys from one address: 3 a minute (one was sent above), then 429 with retry-after
    // before any key is checked, the right one included.
    for _ in 0..2 {
        assert_eq!(embed(Some("guess-0123456789abc"), 1).0, 401);
    }
    for key in ["guess-0123456789abd", "env-key-1-0123456789"] {
        let (status, head, v) = embed(Some(key), 1);
        assert_eq!(
            (status, v["error_type"].as_str()),
            (429, Some("rate_limited")),
            "{v}"
        );
        assert!(
            v["error"].as_str().unwrap().contains("wrong API keys"),
            "{v}"
        );
        assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    }
}

#[test]
fn a_request_past_the_timeout_is_a_json_504() {
    let s = Server::start(
        &temp_path("timeout-partners.json"),
        &[
            "--agents",
            "false",
            "--state-db",
            ":memory:",
            "--request-timeout",
            "20ms",
        ],
    );
    let long = "The backup job on the file server failed again overnight. ".repeat(30);
    let inputs: Vec<&str> = (0..64).map(|_| long.as_str()).collect();
    let (status, v) = s.post("/embed", &json!({ "inputs": inputs }));
    assert_eq!(
        (status, v["error_type"].as_str()),
        (504, Some("timeout")),
        "{v}"
    );
    let (status, _, text) = s.request("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(metric(text.as_str().unwrap(), "mesh_timeouts_total ") >= 1.0);
    assert_eq!(s.get("/health").0, 200);
}

/// A caller's `severity` hint is stored beside the model's severity, named as the caller's,
/// and raises no alert: an all-hands notice hinted CRITICAL stays the model's LOW.
#[test]
fn a_severity_hint_is_recorded_and_raises_no_alert() {
    let text =
        "Hi team, the quarterly all-hands moved to Thursday at 3pm in the main conference room.";
    let (status, answer) = server().post(
        "/threat-intelligence/analyze",
        &json!({"text": text, "severity": "CRITICAL"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["severity"], "LOW", "{answer}");
    assert_eq!(answer["caller_severity"], "CRITICAL", "{answer}");
    let id = answer["result_id"].as_str().unwrap();
    let (status, stored) = server().get(&format!("/results/{id}"));
    assert_eq!(status, 200, "{stored}");
    let (_, events) = server().get("/events?from=1&limit=1000");
    let of_this: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result_id"] == id)
        .collect();
    assert!(!of_this.is_empty(), "{events}");
    assert!(
        of_this.iter().all(|e| e["type"] != "alert"),
        "the hint raised an alert: {of_this:?}"
    );
}

/// Request bodies held by model requests have a budget: with 3 MiB, a request whose 2 MB body
/// is still arriving leaves no room for a second one, refused at once with 429 and
/// `retry-after`; once the first is answered the second gets in.
#[test]
fn inflight_request_bodies_have_a_byte_budget() {
    use std::io::{Read, Write};
    let s = Server::start(
        &temp_path("budget-partners.json"),
        &[
            "--agents",
            "false",
            "--state-db",
            ":memory:",
            "--max-data-body-bytes",
            "2097152",
            "--max-inflight-body-bytes",
            "3145728",
        ],
    );
    let line = "The backup job on the file server failed again overnight.";
    let inputs: Vec<&str> = (0..34_000).map(|_| line).collect();
    let body = json!({ "inputs": inputs }).to_string();
    assert!(
        body.len() > 1_600_000 && body.len() < 2_097_152,
        "{}",
        body.len()
    );
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        slow,
        "POST /embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    slow.write_all(&body.as_bytes()[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(500)); // the server has admitted it
    let json_body = [("Content-Type", "application/json")];
    let (status, head, v) = s.request("POST", "/embed", &json_body, body.as_bytes());
    assert_eq!(
        (status, v["error_type"].as_str()),
        (429, Some("overloaded")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("--max-inflight-body-bytes"),
        "{v}"
    );
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    slow.write_all(&body.as_bytes()[half..]).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(
        !answer.starts_with("HTTP/1.1 429"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    let (status, _, v) = s.request("POST", "/embed", &json_body, body.as_bytes());
    assert_ne!(status, 429, "{v}");
}

/// A retried training with an `Idempotency-Key` gets the first try's model: the same answer,
/// and one new version saved, not two; another key trains a new version.
#[test]
fn a_retried_training_with_an_idempotency_key_saves_one_version() {
    let records: Vec<Value> = (0..120)
        .map(|i| json!({"tickets": i % 12, "left": if i % 12 >= 8 {"yes"} else {"no"}}))
        .collect();
    let model_id = format!("retried-{}", std::process::id());
    let body = json!({"records": records, "target": "left", "model_id": model_id});
    let train = |key: &str| {
        let headers = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ];
        let (status, _, v) = server().request(
            "POST",
            "/client-health/train",
            &headers,
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{v}");
        v
    };
    let versions = || -> Vec<Value> {
        let (_, models) = server().get("/client-health/models");
        let models = models["models"].as_array().unwrap().clone();
        models
            .into_iter()
            .find(|m| m["model_id"] == model_id.as_str())
            .map_or(vec![], |m| m["versions"].as_array().unwrap().clone())
    };
    let key = format!("train-{}", std::process::id());
    let first = train(&key);
    let retry = train(&key);
    assert_eq!(retry, first, "the retry gets the first answer");
    assert_eq!(versions(), [json!(1)]);
    let other = train(&format!("{key}-b"));
    assert_eq!(other["version"], 2, "{other}");
    assert_eq!(versions(), [json!(1), json!(2)]);
}

/// Two tries of one `Idempotency-Key` sent at the same time (a client that retried before its
/// first try answered): one trains, the other waits for its answer; one model version.
#[test]
fn concurrent_tries_of_one_idempotency_key_train_once() {
    let records: Vec<Value> = (0..3000)
        .map(|i| json!({"tickets": i % 12, "spend": (i * 37) % 101, "left": if i % 12 >= 8 {"yes"} else {"no"}}))
        .collect();
    let model_id = format!("concurrent-{}", std::process::id());
    let body = json!({"records": records, "target": "left", "model_id": model_id}).to_string();
    let key = format!("concurrent-{}", std::process::id());
    let start = std::sync::Barrier::new(2);
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let (status, _, v) = server().request(
                        "POST",
                        "/client-health/train",
                        &[
                            ("Content-Type", "application/json"),
                            ("Idempotency-Key", key.as_str()),
                        ],
                        body.as_bytes(),
                    );
                    assert_eq!(status, 200, "{v}");
                    v
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(answers[0], answers[1], "both get the one answer");
    assert_eq!(answers[0]["version"], 1, "{}", answers[0]);
    let (_, models) = server().get("/client-health/models");
    let versions = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_id"] == model_id.as_str())
        .map(|m| m["versions"].clone());
    assert_eq!(versions, Some(json!([1])), "{models}");
}

/// `Idempotency-Key`: a retry returns the stored answer (same `result_id`, same body, one
/// event), a different key or none computes anew, and a malformed key is a 422 naming it.
#[test]
fn a_retry_with_an_idempotency_key_returns_the_stored_answer() {
    let body = json!({"values": [50.0, 51.0, 49.5, 50.5, 95.0, 50.2, 49.8, 50.1, 50.3, 49.9]});
    let send = |key: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        let (status, _, v) = server().request(
            "POST",
            "/anomaly/detect",
            &headers,
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{v}");
        v
    };
    let key = format!("retry-{}", std::process::id());
    let first = send(Some(&key));
    let retry = send(Some(&key));
    assert_eq!(
        retry, first,
        "the retry gets the first answer, time stamps and all"
    );
    let other = send(Some(&format!("{key}-b")));
    let plain = send(None);
    let id = first["result_id"].as_str().unwrap();
    assert_ne!(other["result_id"], id);
    assert_ne!(plain["result_id"], id);
    let (_, events) = server().get("/events?from=1&limit=1000");
    let results = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result_id"] == id && e["type"] == "agent_result")
        .count();
    assert_eq!(results, 1, "one stored answer, one event");
    let (status, _, v) = server().request(
        "POST",
        "/anomaly/detect",
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", ""),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(
        (status, v["field"].as_str()),
        (422, Some("Idempotency-Key")),
        "{v}"
    );
}

/// Agent work that runs past the request's deadline is answered 504 and stores nothing: no
/// result, no event, no federated run counted.
#[test]
fn an_agent_request_past_its_deadline_stores_nothing() {
    let db = temp_path("deadline.db");
    let _ = std::fs::remove_file(&db);
    let s = Server::start(
        &temp_path("deadline-partners.json"),
        &[
            "--state-db",
            db.to_str().unwrap(),
            "--request-timeout",
            "300ms",
            "--only-agents",
            "federated-learning",
        ],
    );
    let (_, before) = s.get("/events?from=1&limit=1000");
    let (status, v) = s.post(
        "/federated/train",
        &json!({"participating_msps": 20, "rounds": 100, "local_steps": 20, "privacy_epsilon": 1.0}),
    );
    assert_eq!(
        (status, v["error_type"].as_str()),
        (504, Some("timeout")),
        "{v}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let (_, after) = s.get("/events?from=1&limit=1000");
    assert_eq!(
        after["events"], before["events"],
        "no event of the cut-off request"
    );
    let (_, status) = s.get("/federated/status");
    assert_eq!(status["runs"], 0, "{status}");
}

/// A client-health training past its deadline answers 504, stops computing and saves no
/// model: the next training gets the lock within its own deadline (the cut-off one stops at
/// its next check, at worst after one boosted-tree fit, which has none), and well after the
/// time the whole training takes, no model of the cut-off request has appeared.
#[test]
fn a_training_past_its_deadline_stops_and_saves_no_model() {
    let s = Server::start(
        &temp_path("train-deadline-partners.json"),
        &[
            "--state-db",
            ":memory:",
            "--request-timeout",
            "3s",
            "--only-agents",
            "client-health",
        ],
    );
    // 6,000 records of 40 columns x 8 levels: 321 features, several seconds of training.
    let wide: Vec<Value> = (0..6_000)
        .map(|i: usize| {
            let mut record: serde_json::Map<String, Value> = (0..40)
                .map(|c| {
                    (
                        format!("c{c}"),
                        json!(format!("l{}", (i * (c + 7) / 3) % 8)),
                    )
                })
                .collect();
            record.insert("churn".into(), json!((i * 7919) % 5 < 2));
            Value::Object(record)
        })
        .collect();
    let (status, v) = s.post(
        "/client-health/train",
        &json!({"records": wide, "target": "churn", "model_id": "wide"}),
    );
    assert_eq!(
        (status, v["error_type"].as_str()),
        (504, Some("timeout")),
        "{v}"
    );
    let small: Vec<Value> = (0..200)
        .map(|i| json!({"calls": i % 10, "plan": if i % 3 == 0 {"pro"} else {"basic"}, "churn": i % 10 >= 7}))
        .collect();
    let (status, v) = s.post(
        "/client-health/train",
        &json!({"records": small, "target": "churn", "model_id": "small"}),
    );
    assert_eq!(status, 200, "{v}");
    std::thread::sleep(Duration::from_secs(5));
    let (_, models) = s.get("/client-health/models");
    let ids: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"small") && !ids.contains(&"wide"), "{models}");
}

/// WebSocket limits: past `--max-ws-connections` a new connection is refused with 429 (and
/// admitted again once one closes); a connection sending faster than 20 messages a second
/// (burst 40) gets errors for the excess, which is not handled.
#[test]
fn websocket_connections_and_their_messages_are_bounded() {
    let s = Server::start(
        &temp_path("ws-limits-partners.json"),
        &[
            "--agents",
            "false",
            "--state-db",
            ":memory:",
            "--max-ws-connections",
            "2",
        ],
    );
    let url = format!("ws://127.0.0.1:{}/ws", s.port);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let (mut first, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            let (second, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            match tokio_tungstenite::connect_async(&url).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), 429);
                    assert!(response.headers().contains_key("retry-after"));
                }
                other => panic!("a third connection got in: {other:?}"),
            }
            drop(second);
            let mut admitted = None;
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
                    admitted = Some(ws);
                    break;
                }
            }
            assert!(admitted.is_some(), "a slot frees when a connection closes");

            // 100 pings at once: about the burst is answered, the rest refused.
            for i in 0..100 {
                first
                    .send(Message::Text(
                        json!({"type": "ping", "data": i}).to_string().into(),
                    ))
                    .await
                    .unwrap();
            }
            let (mut pongs, mut refused) = (0, 0);
            for _ in 0..100 {
                let reply = next_json(&mut first).await;
                match reply["type"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") => {
                        assert!(
                            reply["data"]["error"]
                                .as_str()
                                .unwrap()
                                .contains("messages a second"),
                            "{reply}"
                        );
                        refused += 1;
                    }
                    other => panic!("{other:?}: {reply}"),
                }
            }
            assert!(
                (40..=60).contains(&pongs) && refused == 100 - pongs,
                "{pongs} pongs, {refused} refused"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            first
                .send(Message::Text(r#"{"type":"ping"}"#.into()))
                .await
                .unwrap();
            assert_eq!(
                next_json(&mut first).await["type"],
                "pong",
                "the rate refills"
            );
        });
}

/// A corrupt partner file no longer takes partner matching down: it is moved aside at start
/// and the directory is served (here the sample set, as nothing is stored yet).
#[test]
fn a_corrupt_partner_file_is_moved_aside_and_matching_still_answers() {
    let partners = temp_path("corrupt-partners.json");
    std::fs::write(&partners, "[{\"msp_id\": \"half-writ").unwrap();
    let s = Server::start(
        &partners,
        &[
            "--state-db",
            ":memory:",
            "--only-agents",
            "partner-matching",
        ],
    );
    let (status, v) = s.post(
        "/collaboration/match",
        &json!({"requirements": "a partner for HIPAA compliance audits in Texas"}),
    );
    assert_eq!(status, 200, "{v}");
    assert!(!v["matches"].as_array().unwrap().is_empty(), "{v}");
    assert!(!partners.exists(), "the corrupt file was moved aside");
    let folder = partners.parent().unwrap();
    let name = partners.file_name().unwrap().to_string_lossy().into_owned();
    let aside = std::fs::read_dir(folder)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}.corrupt-"))
        })
        .expect("the file kept beside it");
    let _ = std::fs::remove_file(aside.path());
}
