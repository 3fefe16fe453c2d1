//! Property-based fuzzing of request parsing and validation through the real router (in
//! process, all ten agents loaded): arbitrary bytes and arbitrary JSON on every POST route,
//! well-formed bodies with arbitrary numbers (huge, tiny, negative, repeated) on the numeric
//! agents, and arbitrary text (any Unicode, control characters, long runs, e-mail headers,
//! IOC look-alikes) in the language agents' text fields. Whatever comes in, the answer is a
//! JSON object with an `error` for any 4xx, never a 5xx and never a panic.

mod common;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use clap::Parser;
use mesh_agents::loader::{LanguageAgents, NumericAgents};
use mesh_core::Services;
use mesh_core::{Mesh, ModelArgs, ServiceArgs};
use mesh_lambda::http::AppState;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Parser)]
struct TestArgs {
    #[command(flatten)]
    model: ModelArgs,
}

/// The router with all ten agents loaded, the five language agents on the encoder.
fn app() -> axum::Router {
    static STATE: OnceLock<(tokio::runtime::Runtime, Arc<AppState>)> = OnceLock::new();
    let (_, state) = STATE.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let state = runtime.block_on(async {
            let dir = mesh_testing::require_local_model("all-minilm-l6-v2");
            let models_dir = dir.parent().unwrap().to_str().unwrap().to_string();
            let data_dir = mesh_testing::workspace_data_dir();
            let args = TestArgs::parse_from([
                "test",
                "--models-dir",
                &models_dir,
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--auto-pull",
                "false",
            ]);
            let backend = mesh_core::mesh::load_backend(&args.model).await.unwrap();
            let services = Services::open(&ServiceArgs::ephemeral()).await.unwrap();
            let numeric = NumericAgents::load(
                &args.model.agent_paths(),
                &args.model.only_agents,
                &services.user_state,
            );
            let language = LanguageAgents::load(
                &backend,
                &args.model.agent_paths(),
                &args.model.cloud.providers().await.unwrap(),
                &args.model.only_agents,
                &services.user_state,
                &mesh_agents::recipes::Quiet,
            )
            .await;
            assert!(language.failures().is_empty(), "{:?}", language.failures());
            let mesh = Mesh::new(
                backend,
                args.model.max_client_batch,
                language,
                numeric,
                services,
            );
            AppState::new(mesh, &ServiceArgs::ephemeral(), None).unwrap()
        });
        (runtime, state)
    });
    mesh_lambda::http::router(Arc::clone(state))
}

/// Every POST route: the agents', `/embed` and the partner directory.
fn post_routes() -> Vec<&'static str> {
    let mut routes = common::AGENT_POST_ROUTES.to_vec();
    routes.extend(["/embed", "/collaboration/partners"]);
    routes
}

/// Sends one request; returns the status and the parsed body.
fn send(path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let app = app();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let request = Request::post(path)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}

fn check(path: &str, status: u16, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{path}: status {status}, body {body}");
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("{path} {status}");
    }
    // `/embed` answers `[[f32]]` (text-embeddings-inference's shape); serde also takes a struct
    // from an array, so `[""]` is a valid embed request. Every other answer is an object.
    let embedded = path == "/embed" && status == 200 && body.is_array();
    prop_assert!(
        body.is_object() || embedded,
        "{path}: status {status}, body not JSON"
    );
    if status >= 400 {
        prop_assert!(body["error"].is_string(), "{path}: {body}");
    }
    Ok(())
}

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("text".to_string()),
                    Just("values".to_string()),
                    Just("history".to_string()),
                    Just("points".to_string()),
                    Just("tasks".to_string()),
                    Just("records".to_string()),
                    Just("features".to_string()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Cases per property: `default` in the suite, `FUZZ_CASES` for a longer campaign.
fn campaign_cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Numbers a caller might send: ordinary, extreme, tiny, negative, zero.
fn any_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e6..1e6f64,
        Just(0.0),
        Just(1e308),
        Just(-1e308),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: campaign_cases(48), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_crash(route in prop::sample::select(post_routes()), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let (status, body) = send(route, "application/json", bytes);
        check(route, status, &body)?;
        prop_assert!(status >= 400, "{route}: random bytes accepted: {body}");
    }

    #[test]
    fn arbitrary_json_never_crashes(route in prop::sample::select(post_routes()), value in any_json()) {
        let (status, body) = send(route, "application/json", value.to_string().into_bytes());
        check(route, status, &body)?;
    }

    #[test]
    fn anomaly_detection_takes_any_finite_series(values in prop::collection::vec(any_number(), 0..80), scores: bool) {
        let request = json!({"values": values, "return_scores": scores});
        let (status, body) = send("/anomaly/detect", "application/json", request.to_string().into_bytes());
        check("/anomaly/detect", status, &body)?;
        if status == 200 && scores {
            prop_assert_eq!(body["anomaly_scores"].as_array().map(Vec::len), Some(values.len()));
        }
    }

    #[test]
    fn anomaly_detection_takes_any_finite_points(points in prop::collection::vec(prop::collection::vec(any_number(), 1..4), 0..40)) {
        let request = json!({"points": points});
        let (status, body) = send("/anomaly/detect", "application/json", request.to_string().into_bytes());
        check("/anomaly/detect", status, &body)?;
    }

    #[test]
    fn resource_allocation_takes_any_numbers(
        hours in prop::collection::vec(prop_oneof![3 => 0.1..24.0f64, 1 => any_number()], 0..6),
        available in prop::collection::vec(prop_oneof![3 => 1.0..40.0f64, 1 => any_number()], 0..3),
    ) {
        let tasks: Vec<Value> = hours.iter().enumerate()
            .map(|(i, h)| json!({"id": format!("t{i}"), "skill": "network", "priority": "high", "estimated_hours": h, "deadline_hours": h}))
            .collect();
        let technicians: Vec<Value> = available.iter().enumerate()
            .map(|(i, h)| json!({"id": format!("p{i}"), "skills": ["network"], "capacity_hours": h}))
            .collect();
        let request = json!({"tasks": tasks, "technicians": technicians});
        let (status, body) = send("/resource/optimize", "application/json", request.to_string().into_bytes());
        check("/resource/optimize", status, &body)?;
    }

    #[test]
    fn client_health_takes_any_numbers(tickets in any_number(), hours in any_number(), satisfaction in any_number()) {
        // Columns of the default model (modeldata's mlc_churn).
        let request = json!({"client_id": "c", "features": {
            "account_length": tickets, "total_day_minutes": hours, "number_customer_service_calls": satisfaction}});
        let (status, body) = send("/client-health/predict", "application/json", request.to_string().into_bytes());
        check("/client-health/predict", status, &body)?;
    }
}

proptest! {
    // Forecasting fits several models per request: fewer cases.
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn revenue_forecasting_takes_any_finite_history(history in prop::collection::vec(any_number(), 0..30), horizon in 0usize..30) {
        let request = json!({"history": history, "horizon": horizon});
        let (status, body) = send("/revenue/forecast", "application/json", request.to_string().into_bytes());
        check("/revenue/forecast", status, &body)?;
    }
}

/// Text a caller might send: any Unicode, control characters, long runs of one character,
/// e-mail headers, defanged indicators, numbers.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        "\\PC{0,80}",
        "[\\x00-\\x1f\\x7f]{0,40}",
        (1usize..3000).prop_map(|n| "a".repeat(n)),
        Just(
            "From: a@b.c\r\nSubject: =?utf-8?B?w6k=?=\r\n\r\nhxxp://evil[.]com 10[.]0[.]0[.]1"
                .to_string()
        ),
        "(CVE-[0-9]{4}-[0-9]{1,7} |[0-9a-f]{32,64} |[0-9]{1,3}(\\.[0-9]{1,3}){3} ){0,6}",
    ]
}

proptest! {
    // Each case runs the encoder in a debug build: fewer cases (`FUZZ_CASES` for a campaign).
    #![proptest_config(ProptestConfig { cases: campaign_cases(16), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn language_agents_take_any_text(text in any_text(), top_k in prop_oneof![Just(None), (0usize..40).prop_map(Some)]) {
        let mut requests = vec![
            ("/threat-intelligence/analyze", json!({"text": text})),
            ("/market-intelligence/analyze", json!({"query": text})),
            ("/nlp-query/ask", json!({"query": text})),
            ("/collaboration/match", json!({"requirements": text})),
            ("/compliance/check", json!({"framework": "nist-csf-2.0", "policy_text": text})),
        ];
        if let Some(k) = top_k {
            for (_, request) in &mut requests {
                request["top_k"] = json!(k);
            }
        }
        for (route, request) in requests {
            let (status, body) = send(route, "application/json", request.to_string().into_bytes());
            check(route, status, &body)?;
            if status == 200 {
                prop_assert!(body["model_used"].is_string(), "{route}: {body}");
            }
        }
    }
}
