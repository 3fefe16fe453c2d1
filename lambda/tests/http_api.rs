//! The router over HTTP semantics: API Gateway v1 and v2 events through
//! `lambda_http`, and bad input answered with 4xx JSON naming the field.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use common::reference_vector;
use mesh_core::ModelArgs;
use mesh_lambda::aws::lambda_http::lambda_service;
use mesh_lambda::http::{router, AppState};
use mesh_testing::cosine;
use serde_json::Value;
use tokio::sync::OnceCell;
use tower::ServiceExt;

#[derive(Parser)]
struct TestArgs {
    #[command(flatten)]
    model: ModelArgs,
}

/// One loaded model shared by every test of this binary.
async fn state() -> Arc<AppState> {
    static STATE: OnceCell<Arc<AppState>> = OnceCell::const_new();
    STATE
        .get_or_init(|| async {
            let dir = mesh_testing::require_local_model("all-minilm-l6-v2");
            let models_dir = dir.parent().unwrap().to_str().unwrap().to_string();
            let args = TestArgs::parse_from([
                "test",
                "--models-dir",
                &models_dir,
                "--auto-pull",
                "false",
                "--max-client-batch",
                "4",
                "--agents",
                "false",
            ]);
            AppState::load(&args.model, &mesh_core::ServiceArgs::ephemeral(), None)
                .await
                .unwrap()
        })
        .await
        .clone()
}

async fn lambda_event(file: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let request = lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let response = lambda_service(router(state().await))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_gateway_v1_rest_event_embeds() {
    let (status, headers, body) = lambda_event("apigw_v1_embed.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-model-used"], "all-minilm-l6-v2@1");
    let vectors: Vec<Vec<f32>> = serde_json::from_value(body).unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].len(), 384);
    assert!(cosine(&vectors[0], &reference_vector("Hello")) >= 0.99999);
    let norm: f32 = vectors[1].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_gateway_v2_http_events_embed_and_report_health() {
    // Base64 body, `$default` stage.
    let (status, _, body) = lambda_event("apigw_v2_embed.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let vectors: Vec<Vec<f32>> = serde_json::from_value(body).unwrap();
    assert!(cosine(&vectors[0], &reference_vector("Hello")) >= 0.99999);
    // Named stage in the raw path.
    let (status, _, body) = lambda_event("apigw_v2_health.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "msp-intelligence-mesh");
    assert_eq!(body["model_used"], "all-minilm-l6-v2@1");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
}

async fn call(request: Request<Body>) -> (StatusCode, Value) {
    let response = router(state().await).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post_json(body: &str) -> Request<Body> {
    Request::post("/embed")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_naming_the_field() {
    let long = "firewall ".repeat(400);
    let cases: Vec<(Request<Body>, StatusCode, Option<&str>)> = vec![
        (
            post_json(r#"{"normalize": true}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("inputs"),
        ),
        (
            post_json(r#"{"inputs": 5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("inputs"),
        ),
        (
            post_json(r#"{"inputs": "x", "normalize": "yes"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("normalize"),
        ),
        (
            post_json(r#"{"inputs": "x", "colour": 1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("colour"),
        ),
        (
            post_json(r#"{"inputs": []}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("inputs"),
        ),
        (
            post_json(r#"{"inputs": ["a","b","c","d","e"]}"#),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("inputs"),
        ),
        (post_json(r#"{"inputs": "#), StatusCode::BAD_REQUEST, None),
        (
            post_json(r#"{"inputs": "a", "normalize": NaN}"#),
            StatusCode::BAD_REQUEST,
            Some("normalize"),
        ),
        (
            post_json(&format!(
                r#"{{"inputs": ["ok", "{long}"], "truncate": false}}"#
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("inputs[1]"),
        ),
        (
            Request::post("/embed")
                .body(Body::from(r#"{"inputs": "x"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
    ];
    for (request, expected, field) in cases {
        let (status, body) = call(request).await;
        assert_eq!(status, expected, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{body}");
        }
    }
    // Truncation is the default, and reported.
    let response = router(state().await)
        .oneshot(post_json(&format!(r#"{{"inputs": ["ok", "{long}"]}}"#)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-truncated-inputs"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_the_routes() {
    let (status, body) = call(Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["paths"]["/embed"]["post"].is_object(), "{body}");
    assert!(body["paths"]["/health"]["get"].is_object());
}
