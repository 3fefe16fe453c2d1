//! The HTTP API over one [`Mesh`]: the router with its protection layers ([`router`]),
//! `GET /health`, `POST /embed` (text-embeddings-inference's shape) and `GET /openapi.json`
//! here; the agents' routes ([`agents`]), the stored records, events and status ([`records`],
//! [`metrics`], [`ws`]), async jobs ([`jobs`]), the dashboard ([`web`]); the protection layers
//! ([`protection`]) and the one mapping of errors to statuses ([`error`]); answers that stream
//! their progress ([`progress`]); the local listener
//! ([`serve()`]). [`AppState`] ([`state`]) is what the routes read.

pub mod agents;
pub mod error;
pub mod idempotency;
pub mod jobs;
pub mod metrics;
pub mod middleware;
pub mod progress;
pub mod protection;
pub mod records;
pub mod state;
pub mod web;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_core::error::ErrorBody;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use self::error::ApiError;
pub use self::state::AppState;

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
        .merge(agents::routes(protection.max_data_body_bytes))
        .merge(records::routes())
        .merge(jobs::routes())
        .merge(web::routes(&state.web))
        .layer(axum::extract::DefaultBodyLimit::max(
            protection.max_body_bytes,
        ))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::limit_inflight,
        ))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(from_fn_with_state(state.clone(), middleware::rate_limit))
        .layer(from_fn_with_state(state.clone(), middleware::authenticate))
        .layer(from_fn_with_state(state.clone(), middleware::timeout))
        .layer(from_fn(middleware::json_errors));
    if let Some(cors) = protection.cors_layer() {
        app = app.layer(cors);
    }
    app.layer(from_fn(middleware::log_request))
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
    pub model_bundle: Option<BundleSync>,
    /// The state store and how its writes are made durable (SQLite: `journal_mode`,
    /// `synchronous` as the live connection reports them).
    #[schema(value_type = Object)]
    pub state_store: serde_json::Value,
}

/// The model bundle's sync at start, as `/health` shows it: counts and time only, never where
/// it came from or went (the bucket's name can carry the AWS account id).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BundleSync {
    pub files: usize,
    pub bytes: u64,
    pub downloaded_files: usize,
    pub downloaded_bytes: u64,
    pub reused_files: usize,
    pub elapsed_ms: u64,
}

impl From<&mesh_inference::bundle::SyncReport> for BundleSync {
    fn from(r: &mesh_inference::bundle::SyncReport) -> Self {
        Self {
            files: r.files,
            bytes: r.bytes,
            downloaded_files: r.downloaded_files,
            downloaded_bytes: r.downloaded_bytes,
            reused_files: r.reused_files,
            elapsed_ms: r.elapsed_ms,
        }
    }
}

#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "healthy".into(),
        timestamp: now_iso8601(),
        version: env!("CARGO_PKG_VERSION").into(),
        service: SERVICE_NAME.into(),
        model_used: state
            .embedder
            .as_ref()
            .map_or("none (this process loads no encoder)", |e| e.model_id())
            .into(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        model_bundle: state.mesh.model_bundle.as_ref().map(BundleSync::from),
        state_store: state.store.durability(),
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
        return Err(ApiError::too_large(
            "inputs",
            format!(
                "`inputs` holds {} texts; at most {} per request",
                texts.len(),
                state.max_client_batch
            ),
        ));
    }
    let backend = state.embedder.as_ref().ok_or_else(|| {
        mesh_core::MeshError::Unavailable(
            "this process loads no encoder: it serves numeric agents only".into(),
        )
    })?;
    let normalize = request.normalize.unwrap_or(backend.normalizes_by_default());
    let embeddings = backend.embed(&texts, normalize).await?;
    let truncated: Vec<String> = embeddings
        .iter()
        .enumerate()
        .filter(|(_, e)| e.truncated)
        .map(|(i, _)| i.to_string())
        .collect();
    if !request.truncate.unwrap_or(true) && !truncated.is_empty() {
        return Err(ApiError::too_large(
            format!("inputs[{}]", truncated[0]),
            format!(
                "input {} is longer than the model's {} tokens and `truncate` is false",
                truncated[0],
                backend.max_input_tokens()
            ),
        ));
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
    components(schemas(Health, BundleSync, EmbedRequest, Inputs, ErrorBody))
)]
struct ApiDoc;

/// The OpenAPI document of every route.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(agents::AgentsDoc::openapi());
    doc.merge(records::RecordsDoc::openapi());
    doc.merge(jobs::JobsDoc::openapi());
    doc
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3 document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}

use mesh_agents::now_iso8601;

/// Serves the router on `addr` until Ctrl-C (or, with `exit_on_stdin_eof`, until standard
/// input closes).
pub async fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    exit_on_stdin_eof: bool,
) -> anyhow::Result<()> {
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let stdin_closed = async move {
        if !exit_on_stdin_eof {
            return std::future::pending().await;
        }
        let _ = tokio::task::spawn_blocking(|| {
            use std::io::Read;
            let mut buf = [0u8; 256];
            while std::io::stdin().read(&mut buf).is_ok_and(|n| n > 0) {}
        })
        .await;
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = stdin_closed => tracing::info!("standard input closed; shutting down"),
        }
    })
    .await?;
    Ok(())
}
