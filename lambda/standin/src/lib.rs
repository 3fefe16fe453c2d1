//! A stand-in server for Amazon Comprehend, the Bedrock runtime and the API Gateway management
//! API, for tests and local development without an AWS account: it speaks their wire formats
//! (Comprehend's JSON 1.1 protocol at `/` by `X-Amz-Target`; Bedrock's
//! `POST /model/{id}/converse` and `/model/{id}/invoke`; `PostToConnection` and
//! `DeleteConnection` at `/@connections/{id}`, 410 for the script's gone connections), answers with scripted values, records every call, and injects
//! faults on request (throttling, server errors, slow answers, unreadable bodies). It checks
//! no signatures. It is not a model: what it answers is what the test scripted.
//!
//! Control routes: `PUT /_standin/script` (the answers), `POST /_standin/faults` (a list of
//! faults consumed one per call, in order), `GET /_standin/calls`.
//! Run it with `aws-standin --addr 127.0.0.1:4599` and point the SDK at it with
//! `AWS_ENDPOINT_URL_COMPREHEND` / `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (and the mesh at it with
//! `MESH_WEBSOCKET_ENDPOINT`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What the stand-in answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Script {
    /// DetectSentiment's `Sentiment` and `SentimentScore`.
    pub sentiment: String,
    pub scores: [f32; 4],
    /// DetectEntities: (text, type, score).
    pub entities: Vec<(String, String, f32)>,
    /// DetectKeyPhrases: (text, score).
    pub key_phrases: Vec<(String, f32)>,
    /// Bedrock's completion text.
    pub completion: String,
    /// WebSocket connections that have gone away (`PostToConnection` answers 410).
    #[serde(default)]
    pub gone_connections: Vec<String>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            sentiment: "NEUTRAL".into(),
            scores: [0.1, 0.1, 0.7, 0.1],
            entities: vec![],
            key_phrases: vec![],
            completion: "I don't know.".into(),
            gone_connections: vec![],
        }
    }
}

/// A fault injected into one call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Throttle,
    ServerError,
    /// Answers after this many milliseconds.
    SlowMs(u64),
    /// A 200 with a body that is not JSON.
    Garbage,
}

/// One call the stand-in received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    /// `Comprehend.DetectSentiment`, `Bedrock.Converse`, `Bedrock.InvokeModel`, ...
    pub operation: String,
    pub body: Value,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
}

/// The stand-in's state.
#[derive(Debug, Default)]
pub struct StandIn {
    pub script: Mutex<Script>,
    pub faults: Mutex<VecDeque<Fault>>,
    pub calls: Mutex<Vec<Call>>,
}

impl StandIn {
    /// Queues faults for the next calls.
    pub fn inject(&self, faults: &[Fault]) {
        self.faults.lock().unwrap().extend(faults.iter().copied());
    }

    /// Calls received so far of operations starting with `prefix`.
    pub fn calls_of(&self, prefix: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.operation.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn take_fault(&self, operation: &str, body: Value) -> Option<Fault> {
        let fault = self.faults.lock().unwrap().pop_front();
        self.calls.lock().unwrap().push(Call {
            operation: operation.into(),
            body,
            fault,
        });
        fault
    }
}

/// The stand-in's router.
pub fn router(state: Arc<StandIn>) -> Router {
    Router::new()
        .route("/", post(comprehend))
        .route("/model/{model_id}/converse", post(converse))
        .route("/model/{model_id}/invoke", post(invoke))
        .route(
            "/@connections/{connection_id}",
            post(post_to_connection).delete(delete_connection),
        )
        .route("/_standin/script", put(set_script))
        .route("/_standin/faults", post(add_faults))
        .route("/_standin/calls", get(list_calls))
        .with_state(state)
}

/// Serves the stand-in on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<StandIn>) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

async fn set_script(State(s): State<Arc<StandIn>>, Json(script): Json<Script>) -> StatusCode {
    *s.script.lock().unwrap() = script;
    StatusCode::NO_CONTENT
}

async fn add_faults(State(s): State<Arc<StandIn>>, Json(faults): Json<Vec<Fault>>) -> StatusCode {
    s.inject(&faults);
    StatusCode::NO_CONTENT
}

async fn list_calls(State(s): State<Arc<StandIn>>) -> Json<Vec<Call>> {
    Json(s.calls.lock().unwrap().clone())
}

/// Comprehend's JSON 1.1 error: status and `{__type, message}`.
fn json11(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

/// Bedrock's REST-JSON error: status, `x-amzn-ErrorType` and `{message}`.
fn rest_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-amzn-errortype", kind),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// Applies the fault, if any: an error response, or a delay before the normal answer.
async fn faulted(fault: Option<Fault>, comprehend_style: bool) -> Option<Response> {
    match fault? {
        Fault::Throttle if comprehend_style => Some(json11(
            StatusCode::BAD_REQUEST,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        )),
        Fault::Throttle => Some(rest_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )),
        Fault::ServerError if comprehend_style => Some(json11(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"__type": "InternalServerException", "message": "stand-in failure"}),
        )),
        Fault::ServerError => Some(rest_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "stand-in failure",
        )),
        Fault::SlowMs(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        Fault::Garbage => Some((StatusCode::OK, "<html>not json</html>").into_response()),
    }
}

async fn comprehend(State(s): State<Arc<StandIn>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let operation = target.rsplit('.').next().unwrap_or("").to_string();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = s.take_fault(&format!("Comprehend.{operation}"), request.clone());
    if let Some(response) = faulted(fault, true).await {
        return response;
    }
    if request["Text"].as_str().is_none_or(str::is_empty) {
        return json11(
            StatusCode::BAD_REQUEST,
            json!({"__type": "ValidationException", "message": "1 validation error detected: Value at 'text' failed to satisfy constraint"}),
        );
    }
    let script = s.script.lock().unwrap().clone();
    let answer = match operation.as_str() {
        "DetectSentiment" => json!({
            "Sentiment": script.sentiment,
            "SentimentScore": {"Positive": script.scores[0], "Negative": script.scores[1],
                               "Neutral": script.scores[2], "Mixed": script.scores[3]},
        }),
        "DetectEntities" => {
            let text = request["Text"].as_str().unwrap_or("");
            let entities: Vec<Value> = script
                .entities
                .iter()
                .map(|(t, kind, score)| {
                    let begin = text
                        .find(t.as_str())
                        .map_or(0, |b| text[..b].chars().count());
                    json!({"Text": t, "Type": kind, "Score": score,
                           "BeginOffset": begin, "EndOffset": begin + t.chars().count()})
                })
                .collect();
            json!({ "Entities": entities })
        }
        "DetectKeyPhrases" => json!({
            "KeyPhrases": script.key_phrases.iter()
                .map(|(t, score)| json!({"Text": t, "Score": score}))
                .collect::<Vec<_>>(),
        }),
        other => {
            return json11(
                StatusCode::BAD_REQUEST,
                json!({"__type": "UnknownOperationException", "message": format!("stand-in has no {other}")}),
            )
        }
    };
    json11(StatusCode::OK, answer)
}

fn token_count(text: &str) -> usize {
    text.split_whitespace().count()
}

async fn converse(
    State(s): State<Arc<StandIn>>,
    Path(_model_id): Path<String>,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = s.take_fault("Bedrock.Converse", request.clone());
    if let Some(response) = faulted(fault, false).await {
        return response;
    }
    let completion = s.script.lock().unwrap().completion.clone();
    let input = token_count(&request.to_string());
    let output = token_count(&completion);
    Json(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": completion}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output},
        "metrics": {"latencyMs": 1},
    }))
    .into_response()
}

async fn invoke(
    State(s): State<Arc<StandIn>>,
    Path(_model_id): Path<String>,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = s.take_fault("Bedrock.InvokeModel", request.clone());
    if let Some(response) = faulted(fault, false).await {
        return response;
    }
    if request["anthropic_version"] != "bedrock-2023-05-31" || !request["messages"].is_array() {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request: expected Claude's messages format",
        );
    }
    let completion = s.script.lock().unwrap().completion.clone();
    Json(json!({
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": completion}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": token_count(&request.to_string()), "output_tokens": token_count(&completion)},
    }))
    .into_response()
}

/// `PostToConnection`: records the message (`body.connection_id`, `body.data` as JSON when it
/// parses); 410 `GoneException` for a gone connection.
async fn post_to_connection(
    State(s): State<Arc<StandIn>>,
    Path(connection_id): Path<String>,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let fault = s.take_fault(
        "ApiGateway.PostToConnection",
        json!({"connection_id": connection_id, "data": data}),
    );
    if let Some(response) = faulted(fault, false).await {
        return response;
    }
    if s.script
        .lock()
        .unwrap()
        .gone_connections
        .contains(&connection_id)
    {
        return rest_error(StatusCode::GONE, "GoneException", "connection is gone");
    }
    StatusCode::OK.into_response()
}

/// `DeleteConnection`: records the call.
async fn delete_connection(
    State(s): State<Arc<StandIn>>,
    Path(connection_id): Path<String>,
) -> Response {
    s.take_fault(
        "ApiGateway.DeleteConnection",
        json!({"connection_id": connection_id}),
    );
    StatusCode::NO_CONTENT.into_response()
}
