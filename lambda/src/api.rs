//! Routes: `GET /health`, `POST /embed` (text-embeddings-inference's shape), `GET /openapi.json`;
//! the dashboard's files at `/` (see [`crate::web`]).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// Name of the service in `/health`.
pub const SERVICE_NAME: &str = "msp-intelligence-mesh";

/// Builds the router every deployment serves, behind the protection layers (outermost
/// first): request log, CORS, JSON error bodies, timeout, API key, rate limit, metrics,
/// in-flight bound, body limit.
pub fn router(state: Arc<AppState>) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    let protection = &state.protection;
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/embed", post(embed))
        .route("/openapi.json", get(openapi))
        .merge(crate::agents_api::routes(protection.max_data_body_bytes))
        .merge(crate::records_api::routes())
        .merge(crate::jobs::routes())
        .merge(crate::web::routes(&state.web))
        .layer(axum::extract::DefaultBodyLimit::max(
            protection.max_body_bytes,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            crate::protection::limit_inflight,
        ))
        .layer(from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(from_fn_with_state(
            state.clone(),
            crate::protection::rate_limit,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            crate::protection::authenticate,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            crate::protection::timeout,
        ))
        .layer(from_fn(crate::protection::json_errors));
    if let Some(cors) = protection.cors_layer() {
        app = app.layer(cors);
    }
    app.layer(from_fn(crate::protection::log_request))
        .with_state(state)
}

/// `/health` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub timestamp: String,
    pub version: String,
    pub service: String,
    /// The embedding model loaded (`id@version`).
    pub model_used: String,
    pub uptime_seconds: f64,
    /// The S3 model bundle synced at start (files downloaded or reused), when serving from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub model_bundle: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "healthy".into(),
        timestamp: now_iso8601(),
        version: env!("CARGO_PKG_VERSION").into(),
        service: SERVICE_NAME.into(),
        model_used: state.embedder.model_id().into(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        model_bundle: state
            .model_bundle
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok()),
    })
}

/// One text or several.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged, expecting = "a string or an array of strings")]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
}

/// `/embed` request (text-embeddings-inference's shape).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// Text or texts to embed.
    pub inputs: Inputs,
    /// L2-normalise the vectors (default: as the model was trained, true for all-MiniLM-L6-v2).
    #[serde(default)]
    pub normalize: Option<bool>,
    /// Cut texts longer than the model's limit (default true); when false such a text is a 413.
    #[serde(default)]
    pub truncate: Option<bool>,
}

/// Embeds texts. The body is `[[f32]]`, one vector per input in input order. Headers:
/// `x-model-used` (model id and version), `x-truncated-inputs` (indices of inputs cut at the
/// model's limit, comma-separated; empty when none), `x-total-tokens`.
#[utoipa::path(post, path = "/embed", request_body = EmbedRequest,
    responses((status = 200, body = Vec<Vec<f32>>), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn embed(
    State(state): State<Arc<AppState>>,
    body: Result<Json<EmbedRequest>, JsonRejection>,
) -> Result<(HeaderMap, Json<Vec<Vec<f32>>>), ApiError> {
    let Json(request) = body?;
    let texts = match request.inputs {
        Inputs::One(t) => vec![t],
        Inputs::Many(v) => v,
    };
    if texts.is_empty() {
        return Err(ApiError::validation(
            "inputs",
            "`inputs` must hold at least one text",
        ));
    }
    if texts.len() > state.max_client_batch {
        return Err(ApiError::TooLarge {
            field: "inputs".into(),
            message: format!(
                "`inputs` holds {} texts; at most {} per request",
                texts.len(),
                state.max_client_batch
            ),
        });
    }
    let backend = &state.embedder;
    let normalize = request.normalize.unwrap_or(backend.normalizes_by_default());
    let embeddings = backend.embed(&texts, normalize).await?;
    let truncated: Vec<String> = embeddings
        .iter()
        .enumerate()
        .filter(|(_, e)| e.truncated)
        .map(|(i, _)| i.to_string())
        .collect();
    if !request.truncate.unwrap_or(true) && !truncated.is_empty() {
        return Err(ApiError::TooLarge {
            field: format!("inputs[{}]", truncated[0]),
            message: format!(
                "input {} is longer than the model's {} tokens and `truncate` is false",
                truncated[0],
                backend.max_input_tokens()
            ),
        });
    }
    let mut headers = HeaderMap::new();
    headers.insert("x-model-used", header(backend.model_id()));
    headers.insert("x-truncated-inputs", header(&truncated.join(",")));
    let total: usize = embeddings.iter().map(|e| e.tokens).sum();
    headers.insert("x-total-tokens", header(&total.to_string()));
    Ok((
        headers,
        Json(embeddings.into_iter().map(|e| e.vector).collect()),
    ))
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MSP Intelligence Mesh",
        description = "On-device ML inference for managed service providers"
    ),
    paths(health, embed),
    components(schemas(Health, EmbedRequest, Inputs, ErrorBody))
)]
struct ApiDoc;

/// The OpenAPI document of every route.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::agents_api::AgentsDoc::openapi());
    doc.merge(crate::records_api::RecordsDoc::openapi());
    doc.merge(crate::jobs::JobsDoc::openapi());
    doc
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3 document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}

pub use mesh_agents::now_iso8601;
