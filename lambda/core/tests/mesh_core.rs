//! The agents through the service core alone, no server: one [`Mesh`] loaded from the
//! workspace's prepared models (`msp-mesh prepare`), dispatched to and recorded into an
//! in-memory store. The references are hand-built cases (planted anomalies, a straight-line
//! history, a hand-solved schedule) and the answers' own JSON, against which the typed facts,
//! the stored rows and the published events are checked.

use std::sync::{Arc, OnceLock};

use clap::Parser;
use mesh_agents::AgentKind;
use mesh_core::job_runner::{run_job, JobOutcome};
use mesh_core::{Mesh, MeshError, ModelArgs, ServiceArgs};
use serde_json::{json, Value};

#[derive(Parser)]
struct TestArgs {
    #[command(flatten)]
    model: ModelArgs,
}

struct Shared {
    runtime: tokio::runtime::Runtime,
    mesh: Arc<Mesh>,
}

/// One mesh (every agent, the workspace's models, no persisted state) for every test.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let models_dir = mesh_testing::workspace_models_dir();
        let partners = tempfile::tempdir().unwrap().keep().join("partners.json");
        let args = TestArgs::parse_from([
            "test",
            "--models-dir",
            models_dir.to_str().unwrap(),
            "--data-dir",
            mesh_testing::workspace_data_dir().to_str().unwrap(),
            "--cache-dir",
            models_dir.join(".cache").to_str().unwrap(),
            "--partners-file",
            partners.to_str().unwrap(),
            "--auto-pull",
            "false",
        ]);
        let mesh = runtime
            .block_on(Mesh::load(
                &args.model,
                &ServiceArgs::ephemeral(),
                &mesh_agents::recipes::Quiet,
            ))
            .expect("run `msp-mesh prepare` first (scripts/test.sh does)");
        Shared { runtime, mesh }
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    shared().runtime.block_on(f)
}

fn mesh() -> &'static Mesh {
    &shared().mesh
}

#[test]
fn every_agent_is_loaded_and_names_its_model() {
    for (kind, model) in mesh().agent_models() {
        let model = model.unwrap_or_else(|e| panic!("{kind:?} not loaded: {e}"));
        assert!(!model.trim().is_empty(), "{kind:?} names no model");
    }
}

#[test]
fn a_threat_is_stored_alerted_and_published_as_its_answer_says() {
    let text = "Ransomware encrypted the file server FS01 overnight; the ransom note demands \
                bitcoin. The loader called hxxp://update-check[.]net/gate.php from 185.220.101[.]4.";
    let answer =
        block_on(mesh().dispatch(AgentKind::ThreatIntelligence, json!({"text": text}))).unwrap();
    let threat = answer
        .facts
        .threat
        .clone()
        .expect("a threat answer carries its threat");
    assert_eq!(threat.severity, answer.body["severity"]);
    assert_eq!(threat.threat_type, answer.body["threat_type"]);
    assert_eq!(json!(threat.confidence), answer.body["confidence"]);
    assert_eq!(threat.indicators, answer.body["indicators"]);
    assert_eq!(answer.model_used, answer.body["model_used"]);
    assert_ne!(threat.threat_type, "benign");

    let severity = threat.severity.clone();
    let stored = block_on(mesh().record(answer)).unwrap();
    let id = stored["result_id"].as_str().unwrap().to_string();
    let lookup = id.clone();
    let result = block_on(mesh().blocking(move |s| s.get_result(&lookup)))
        .unwrap()
        .unwrap();
    assert_eq!(result.data, stored);
    let threats = block_on(mesh().blocking(|s| s.list_threats(&Default::default()))).unwrap();
    let row = threats.iter().find(|t| t.threat_id == id).unwrap();
    assert_eq!(
        (row.severity.as_str(), row.confidence),
        (severity.as_str(), stored["confidence"].as_f64().unwrap())
    );
    let events = block_on(mesh().events.replay(1, 1000)).unwrap();
    let mine: Vec<_> = events.iter().filter(|e| e.result_id == id).collect();
    let alerting = ["HIGH", "CRITICAL"].contains(&severity.as_str());
    assert_eq!(mine.len(), 1 + usize::from(alerting), "{mine:?}");
    assert_eq!(mine[0].event_type, "agent_result");
    if alerting {
        assert_eq!(mine[1].event_type, "alert");
        assert_eq!(mine[1].data["severity"], severity.as_str());
    }
}

#[test]
fn planted_anomalies_are_found_through_the_core() {
    let mut values: Vec<f64> = (0..200)
        .map(|t| {
            40.0 + 8.0 * (t as f64 * std::f64::consts::PI / 12.0).sin()
                + 0.5 * (t as f64 * 1.7).sin()
        })
        .collect();
    values[70] = 98.0;
    values[140] = 2.0;
    let answer = block_on(mesh().dispatch(
        AgentKind::AnomalyDetection,
        json!({"metric_type": "cpu_percent", "values": values}),
    ))
    .unwrap();
    let found: Vec<(u64, &str)> = answer.body["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["index"].as_u64().unwrap(), a["type"].as_str().unwrap()))
        .collect();
    assert_eq!(found, vec![(70, "spike"), (140, "drop")]);
    assert_eq!(
        answer.facts,
        Default::default(),
        "anomalies raise no threat or alert"
    );
}

#[test]
fn a_straight_line_is_forecast_as_its_continuation() {
    let history: Vec<f64> = (0..30).map(|t| 10_000.0 + 250.0 * t as f64).collect();
    let answer = block_on(mesh().dispatch(
        AgentKind::RevenueForecasting,
        json!({"history": history, "horizon": 6}),
    ))
    .unwrap();
    for (k, m) in answer.body["monthly_forecast"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let truth = 10_000.0 + 250.0 * (30 + k) as f64;
        let got = m["revenue"].as_f64().unwrap();
        assert!((got - truth).abs() / truth < 0.01, "period {k}: {got}");
    }
}

#[test]
fn the_hand_solved_schedule_comes_back() {
    let answer = block_on(mesh().dispatch(
        AgentKind::ResourceAllocation,
        json!({
            "tasks": [
                {"id": "fw", "skill": "network", "priority": "critical", "estimated_hours": 3, "deadline_hours": 4},
                {"id": "pc1", "skill": "desktop", "priority": 2, "estimated_hours": 2},
                {"id": "pc2", "skill": "desktop", "priority": 1, "estimated_hours": 2}
            ],
            "technicians": [
                {"id": "alice", "skills": ["network", "desktop"], "capacity_hours": 4},
                {"id": "bob", "skills": ["desktop"], "capacity_hours": 4, "efficiency": 2.0}
            ]
        }),
    ))
    .unwrap();
    assert_eq!(answer.body["tasks_assigned"], 3);
    assert!((answer.body["time_saved_hours"].as_f64().unwrap() - 2.0).abs() < 1e-6);
}

#[test]
fn a_risky_client_raises_an_alert_with_the_answers_figures() {
    let features = json!({
        "state": "KS", "account_length": 100, "area_code": "area_code_415",
        "voice_mail_plan": "no", "number_vmail_messages": 0,
        "total_day_minutes": 180.0, "total_day_calls": 100, "total_day_charge": 30.6,
        "total_eve_minutes": 200.0, "total_eve_calls": 100, "total_eve_charge": 17.0,
        "total_night_minutes": 200.0, "total_night_calls": 100, "total_night_charge": 9.0,
        "total_intl_minutes": 10.0, "total_intl_calls": 2, "total_intl_charge": 2.7,
        "international_plan": "yes", "number_customer_service_calls": 5
    });
    let answer = block_on(mesh().dispatch(
        AgentKind::ClientHealth,
        json!({"client_id": "c-core", "features": features}),
    ))
    .unwrap();
    let risk = answer.facts.client_risk.clone().unwrap();
    assert_eq!(risk.risk_level, answer.body["risk_level"]);
    assert_eq!(json!(risk.churn_risk), answer.body["churn_risk"]);
    assert!(risk.churn_risk > 0.5, "{}", answer.body);
    let level = risk.risk_level.clone();
    let stored = block_on(mesh().record(answer)).unwrap();
    let id = stored["result_id"].as_str().unwrap().to_string();
    let events = block_on(mesh().events.replay(1, 1000)).unwrap();
    let alerts: Vec<_> = events
        .iter()
        .filter(|e| e.result_id == id && e.event_type == "alert")
        .collect();
    assert_eq!(
        alerts.len(),
        usize::from(["High", "Critical"].contains(&level.as_str()))
    );
    if let Some(alert) = alerts.first() {
        assert_eq!(alert.data["client_id"], "c-core");
        assert_eq!(alert.data["churn_risk"], stored["churn_risk"]);
        assert_eq!(alert.data["severity"], level.to_ascii_uppercase());
    }
}

#[test]
fn a_federated_run_is_stored_as_network_metrics() {
    let answer = block_on(mesh().dispatch(
        AgentKind::FederatedLearning,
        json!({"participating_msps": 3, "privacy_epsilon": 2.0, "rounds": 2, "local_steps": 2, "seed": 7}),
    ))
    .unwrap();
    let stored = block_on(mesh().record(answer)).unwrap();
    let id = stored["result_id"].as_str().unwrap().to_string();
    let metrics = block_on(mesh().blocking(|s| s.list_network_metrics(None))).unwrap();
    let mine: Vec<_> = metrics.iter().filter(|m| m.source == id).collect();
    for (i, n) in stored["records_per_msp"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let row = mine
            .iter()
            .find(|m| m.msp_id == format!("msp-{}", i + 1))
            .unwrap();
        assert_eq!(
            (row.metric_type.as_str(), row.value),
            ("federated_records", n.as_f64().unwrap())
        );
    }
    let spent = mine
        .iter()
        .find(|m| m.msp_id == "mesh" && m.metric_type == "privacy_epsilon_spent")
        .unwrap();
    assert_eq!(spent.value, stored["privacy_budget_used"].as_f64().unwrap());
}

#[test]
fn request_faults_name_the_field() {
    let e = block_on(mesh().dispatch(
        AgentKind::RevenueForecasting,
        json!({"history": [1.0, "x"], "horizon": 3}),
    ))
    .unwrap_err();
    assert!(
        matches!(&e, MeshError::Invalid { field, .. } if field == "history[1]"),
        "{e:?}"
    );
    assert!(e.is_request_fault());
    let e = block_on(mesh().dispatch(AgentKind::ThreatIntelligence, json!({"text": "  "})))
        .unwrap_err();
    assert!(
        matches!(&e, MeshError::Invalid { field, .. } if field == "text"),
        "{e:?}"
    );
}

#[test]
fn batch_records_keep_their_id_and_report_errors_in_line() {
    let (ok, answered) = block_on(mesh().score_record(
        AgentKind::RevenueForecasting,
        Ok(json!({"id": "r-1", "history": [100, 120, 140, 160, 180, 200], "horizon": 2})),
    ));
    assert!(answered);
    assert_eq!(ok["id"], "r-1");
    assert_eq!(ok["monthly_forecast"].as_array().unwrap().len(), 2);
    let (bad, answered) = block_on(mesh().score_record(
        AgentKind::RevenueForecasting,
        Ok(json!({"id": 7, "horizon": 2})),
    ));
    assert!(!answered);
    assert_eq!(
        (bad["id"].clone(), bad["error"]["field"].clone()),
        (json!(7), json!("history"))
    );
    let (torn, _) = block_on(mesh().score_record(AgentKind::Compliance, Err("EOF".into())));
    assert_eq!(torn["error"]["error_type"], "bad_json");
}

#[test]
fn a_job_is_stored_under_its_id_once() {
    let job_id = mesh_core::store::new_result_id();
    let message = json!({
        "job_id": job_id, "agent": "revenue-forecasting", "submitted_ms": 0,
        "request": {"history": [10, 12, 14, 16, 18, 20, 22], "horizon": 1}
    })
    .to_string();
    assert_eq!(
        block_on(run_job(mesh(), &message)).unwrap(),
        JobOutcome::Done
    );
    assert_eq!(
        block_on(run_job(mesh(), &message)).unwrap(),
        JobOutcome::AlreadyDone
    );
    let lookup = job_id.clone();
    let stored = block_on(mesh().blocking(move |s| s.get_result(&lookup)))
        .unwrap()
        .unwrap();
    assert_eq!(stored.data["result_id"], Value::String(job_id));
    let failed = json!({
        "job_id": mesh_core::store::new_result_id(), "agent": "revenue-forecasting",
        "submitted_ms": 0, "request": {"horizon": 1}
    })
    .to_string();
    assert_eq!(
        block_on(run_job(mesh(), &failed)).unwrap(),
        JobOutcome::Failed
    );
    assert!(block_on(run_job(mesh(), "not a job")).is_err());
}
