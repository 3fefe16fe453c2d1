//! API protection, all configurable: API keys (`x-api-key`, constant-time comparison),
//! CORS, request body limits, a per-client token-bucket rate limit (governor's GCRA), a bound
//! on in-flight model work (429 beyond it), a request timeout (504), JSON error bodies for
//! every error response, and one structured log line per request (no secrets).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clap::{Args, ValueEnum};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ErrorBody;
use crate::AppState;

/// When API keys are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Required when keys are configured, or when listening beyond loopback (which then needs keys).
    Auto,
    /// Always required (keys must be configured).
    Required,
    /// Never required.
    Off,
}

/// Protection settings of `msp-mesh serve` and the Lambda `bootstrap`; every flag has an
/// environment fallback.
#[derive(Debug, Clone, Args)]
pub struct ProtectionArgs {
    /// API keys accepted in the `x-api-key` header (comma-separated).
    #[arg(
        long,
        env = "MESH_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// File of API keys, one per line (`#` starts a comment).
    #[arg(long, env = "MESH_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// When keys are required: auto (when configured, or beyond loopback), required, off.
    #[arg(long, env = "MESH_AUTH", value_enum, default_value = "auto")]
    pub auth: AuthMode,
    /// Origins allowed by CORS (comma-separated; `*` for any). None: no CORS headers.
    #[arg(long, env = "MESH_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Largest request body of most routes, bytes.
    #[arg(long, env = "MESH_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest body of the routes that take the caller's data (series, points, training
    /// records), bytes.
    #[arg(long, env = "MESH_MAX_DATA_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_data_body_bytes: usize,
    /// Sustained requests per second per client (API key, else address); 0 turns the limit off.
    #[arg(long, env = "MESH_RATE_LIMIT_PER_SECOND", default_value_t = 1000)]
    pub rate_limit_per_second: u32,
    /// Requests a client may send at once above the sustained rate.
    #[arg(long, env = "MESH_RATE_LIMIT_BURST", default_value_t = 2000)]
    pub rate_limit_burst: u32,
    /// Model requests (agents, /embed) running at once; more are refused with 429.
    #[arg(long, env = "MESH_MAX_INFLIGHT", default_value_t = 128)]
    pub max_inflight: usize,
    /// Longest a request may run before it is answered with 504 (e.g. `120s`, `2m`).
    #[arg(long, env = "MESH_REQUEST_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
}

impl Default for ProtectionArgs {
    fn default() -> Self {
        Self {
            api_keys: vec![],
            api_keys_file: None,
            auth: AuthMode::Auto,
            cors_origins: vec![],
            max_body_bytes: 2 * 1024 * 1024,
            max_data_body_bytes: 64 * 1024 * 1024,
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            max_inflight: 128,
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// Errors of the protection settings.
#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error("reading API keys from {path}: {source}")]
    KeysFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API keys are required (--auth required) but none is configured (MESH_API_KEYS or MESH_API_KEYS_FILE)")]
    RequiredWithoutKeys,
    #[error("listening on {0}, beyond loopback, without API keys: set MESH_API_KEYS or MESH_API_KEYS_FILE, or pass --auth off to serve without them")]
    ExposedWithoutKeys(SocketAddr),
    #[error("--max-inflight must be at least 1")]
    NoInflight,
}

/// The protection of a running server.
pub struct Protection {
    /// SHA-256 digests of the accepted keys.
    key_digests: Vec<[u8; 32]>,
    keys_required: bool,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    inflight: Arc<Semaphore>,
    max_inflight: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_data_body_bytes: usize,
    cors_origins: Vec<String>,
}

/// Who sent a request: `key:<first 12 hex of the key's SHA-256>`, else `addr:<ip>`, else
/// `anonymous`. Logged and used as the rate-limit key; never the key itself.
#[derive(Debug, Clone)]
pub struct ClientId(pub String);

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Protection {
    /// Builds the protection from its settings; `listen` is the server's address (`None`
    /// on Lambda, where API Gateway fronts the function).
    pub fn from_args(
        args: &ProtectionArgs,
        listen: Option<SocketAddr>,
    ) -> Result<Self, ProtectionError> {
        let mut keys: Vec<String> = args
            .api_keys
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        if let Some(path) = &args.api_keys_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ProtectionError::KeysFile {
                    path: path.clone(),
                    source,
                })?;
            keys.extend(
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                    .filter(|k| !k.is_empty()),
            );
        }
        let keys_required = match args.auth {
            AuthMode::Off => false,
            AuthMode::Required if keys.is_empty() => {
                return Err(ProtectionError::RequiredWithoutKeys)
            }
            AuthMode::Required => true,
            AuthMode::Auto => match listen {
                _ if !keys.is_empty() => true,
                Some(addr) if !addr.ip().is_loopback() => {
                    return Err(ProtectionError::ExposedWithoutKeys(addr))
                }
                _ => false,
            },
        };
        if args.max_inflight == 0 {
            return Err(ProtectionError::NoInflight);
        }
        let limiter = NonZeroU32::new(args.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(args.rate_limit_burst.max(1)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Ok(Self {
            key_digests: keys.iter().map(|k| digest(k)).collect(),
            keys_required,
            limiter,
            inflight: Arc::new(Semaphore::new(args.max_inflight)),
            max_inflight: args.max_inflight,
            request_timeout: args.request_timeout,
            max_body_bytes: args.max_body_bytes,
            max_data_body_bytes: args.max_data_body_bytes,
            cors_origins: args.cors_origins.clone(),
        })
    }

    /// Whether requests need a key.
    pub fn keys_required(&self) -> bool {
        self.keys_required
    }

    /// Model requests running now.
    pub fn inflight_now(&self) -> usize {
        self.max_inflight - self.inflight.available_permits()
    }

    /// The client id of a valid key, comparing digests in constant time against every
    /// configured key (no early exit, so timing says nothing about which key nearly matched).
    fn check_key(&self, presented: &str) -> Option<ClientId> {
        let presented = digest(presented);
        let mut matched = subtle::Choice::from(0);
        for known in &self.key_digests {
            matched |= known.ct_eq(&presented);
        }
        bool::from(matched).then(|| ClientId(format!("key:{}", &hex::encode(presented)[..12])))
    }

    /// The CORS layer of the configured origins (none: no CORS headers).
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        let origins = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::OPTIONS])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static("x-api-key"),
                ])
                .max_age(Duration::from_secs(600)),
        )
    }
}

/// A JSON error response with a status and `error_type`.
pub fn error_response(status: StatusCode, error_type: &'static str, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message,
            error_type,
            field: None,
        }),
    )
        .into_response()
}

/// Routes open without a key: the load balancer's health probe and the dashboard's files.
fn open_route(path: &str) -> bool {
    path == "/health" || crate::web::is_dashboard_file(path)
}

/// Middleware: checks `x-api-key` (or `api_key` in the query of `/ws`, which browsers cannot
/// give headers) and tags the request with its [`ClientId`].
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let protection = &state.protection;
    let presented = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            (request.uri().path() == "/ws")
                .then(|| request.uri().query())
                .flatten()
                .and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("api_key=").map(str::to_string))
                })
        });
    let client = match presented.as_deref().and_then(|k| protection.check_key(k)) {
        Some(client) => client,
        None if protection.keys_required && !open_route(request.uri().path()) => {
            state
                .metrics
                .unauthorized
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = if presented.is_some() {
                "the API key in `x-api-key` is not valid"
            } else {
                "this server needs an API key in the `x-api-key` header"
            };
            return error_response(StatusCode::UNAUTHORIZED, "unauthorized", message.into());
        }
        None => ClientId(
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "anonymous".into(), |c| format!("addr:{}", c.0.ip())),
        ),
    };
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// Middleware: the per-client token bucket; 429 with `retry-after` beyond it.
pub async fn rate_limit(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(limiter) = &state.protection.limiter {
        let client = request
            .extensions()
            .get::<ClientId>()
            .map_or_else(|| "anonymous".to_string(), |c| c.0.clone());
        if let Err(not_until) = limiter.check_key(&client) {
            state
                .metrics
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limit reached for this client; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            );
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
    }
    next.run(request).await
}

/// Whether a request is model work (an agent call or `/embed`).
fn is_model_work(method: &Method, route: &str) -> bool {
    route == "/embed" && method == Method::POST
        || crate::metrics::agent_for(method, route).is_some()
}

/// Middleware: at most `max_inflight` model requests at once; 429 beyond it, immediately.
pub async fn limit_inflight(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    if !route
        .as_deref()
        .is_some_and(|r| is_model_work(request.method(), r))
    {
        return next.run(request).await;
    }
    let Ok(_permit) = Arc::clone(&state.protection.inflight).try_acquire_owned() else {
        state
            .metrics
            .overloaded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!(
                "{} model requests are running, the most this server takes at once; retry shortly",
                state.protection.max_inflight
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
}

/// Middleware: answers 504 when the request runs past the timeout.
pub async fn timeout(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let limit = state.protection.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state
                .metrics
                .timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "the request ran longer than {}",
                    humantime::format_duration(limit)
                ),
            )
        }
    }
}

/// Middleware: every error response gets a JSON body (axum's own 404, 405 and 413 come bare).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let (error_type, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the body is larger than allowed".into()),
        _ => {
            let (parts, body) = response.into_parts();
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let message = if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            };
            let mut fixed = error_response(status, "http", message);
            for (name, value) in parts.headers.iter() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    fixed.headers_mut().insert(name, value.clone());
                }
            }
            return fixed;
        }
    };
    let (parts, _) = response.into_parts();
    let mut fixed = error_response(status, error_type, message);
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        fixed.headers_mut().insert(header::ALLOW, allow.clone());
    }
    fixed
}

/// Middleware: one log line per request (method, route, status, latency, client id); never
/// the query string, headers or body.
pub async fn log_request(request: Request<Body>, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    if status >= 500 {
        tracing::warn!(%method, path, status, latency_ms, client, "request");
    } else {
        tracing::info!(%method, path, status, latency_ms, client, "request");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ProtectionArgs {
        ProtectionArgs::default()
    }

    #[test]
    fn keys_are_required_when_configured_or_exposed() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let exposed: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(!Protection::from_args(&args(), Some(loopback))
            .unwrap()
            .keys_required());
        assert!(matches!(
            Protection::from_args(&args(), Some(exposed)),
            Err(ProtectionError::ExposedWithoutKeys(_))
        ));
        let off = ProtectionArgs {
            auth: AuthMode::Off,
            ..args()
        };
        assert!(!Protection::from_args(&off, Some(exposed))
            .unwrap()
            .keys_required());
        let keyed = ProtectionArgs {
            api_keys: vec!["k1".into()],
            ..args()
        };
        assert!(Protection::from_args(&keyed, Some(loopback))
            .unwrap()
            .keys_required());
        let required = ProtectionArgs {
            auth: AuthMode::Required,
            ..args()
        };
        assert!(matches!(
            Protection::from_args(&required, None),
            Err(ProtectionError::RequiredWithoutKeys)
        ));
    }

    #[test]
    fn keys_from_env_list_and_file_are_checked_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# team keys\nfile-key  # ops\n\n").unwrap();
        let p = Protection::from_args(
            &ProtectionArgs {
                api_keys: vec![" env-key ".into()],
                api_keys_file: Some(file),
                ..args()
            },
            None,
        )
        .unwrap();
        assert!(p.check_key("env-key").is_some());
        assert!(p.check_key("file-key").is_some());
        assert!(p.check_key("file-key ").is_none());
        assert!(p.check_key("").is_none());
        let id = p.check_key("env-key").unwrap().0;
        assert!(id.starts_with("key:") && !id.contains("env-key"), "{id}");
    }
}
