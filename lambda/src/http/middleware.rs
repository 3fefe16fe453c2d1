//! The protection layers as axum middleware, outermost first in [`crate::http::router`]: one
//! log line per request (no secrets), JSON error bodies for every error response, the request
//! timeout (504), the API key (401), the per-client rate limit (429) and the bound on in-flight
//! model work (429). Every refusal is an [`ApiError`], mapped in one place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};

use crate::http::error::ApiError;
use crate::http::idempotency::Deadline;
use crate::http::progress::{hold_until_end, Streamed};
use crate::http::protection::ClientId;
use crate::http::state::AppState;

/// Routes open without a key: the load balancer's health probe and the dashboard's files.
fn open_route(path: &str) -> bool {
    path == "/health" || crate::http::web::is_dashboard_file(path)
}

/// The key a request presents: its `x-api-key` header, or for `/ws` (browsers cannot give a
/// WebSocket headers) the `api_key` query parameter, percent-decoded.
fn presented_key(request: &Request) -> Option<String> {
    if let Some(header) = request.headers().get("x-api-key") {
        return header.to_str().ok().map(str::to_string);
    }
    if request.uri().path() != "/ws" {
        return None;
    }
    let Query(query) =
        Query::<std::collections::HashMap<String, String>>::try_from_uri(request.uri()).ok()?;
    query.get("api_key").cloned()
}

/// Middleware: checks `x-api-key` (or `api_key` in the query of `/ws`, which browsers cannot
/// give headers) and tags the request with its [`ClientId`].
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let protection = &state.protection;
    let presented = presented_key(&request);
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "anonymous".into(), |c| format!("addr:{}", c.0.ip()));
    // An address that presented too many wrong keys has no key checked until its window ends.
    if presented.is_some() {
        if let Some(wait) = protection.auth_failures.blocked_for(&address) {
            state
                .metrics
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            return ApiError::RateLimited {
                message: format!("too many wrong API keys from this address; retry in {seconds} s"),
                retry_after_secs: seconds,
            }
            .into_response();
        }
    }
    let client = match presented.as_deref().and_then(|k| protection.check_key(k)) {
        Some(client) => client,
        None if protection.keys_required && !open_route(request.uri().path()) => {
            state
                .metrics
                .unauthorized
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = if presented.is_some() {
                protection.auth_failures.record(&address);
                "the API key in `x-api-key` is not valid"
            } else {
                "this server needs an API key in the `x-api-key` header"
            };
            return ApiError::Unauthorized(message.into()).into_response();
        }
        None => ClientId(address),
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
            return ApiError::RateLimited {
                message: format!(
                    "rate limit reached for this client; retry in {} ms",
                    wait.as_millis().max(1)
                ),
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
            .into_response();
        }
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
    }
    next.run(request).await
}

/// Whether a request is model work (an agent call, `/embed`, or a partner upload, which
/// embeds every new profile).
fn is_model_work(method: &Method, route: &str) -> bool {
    route == "/embed" && method == Method::POST
        || route == "/collaboration/partners" && (method == Method::PUT || method == Method::POST)
        || crate::http::metrics::agent_for(method, route).is_some()
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
    let protection = &state.protection;
    let refuse = |message: String| {
        state
            .metrics
            .overloaded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::Overloaded(message).into_response()
    };
    let Ok(permit) = Arc::clone(&protection.inflight).try_acquire_owned() else {
        return refuse(format!(
            "{} model requests are running, the most this server takes at once; retry shortly",
            protection.max_inflight
        ));
    };
    // The body's bytes, held until the answer: by its length, else the most it may be.
    let body_bytes = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(protection.max_data_body_bytes)
        .min(protection.max_data_body_bytes);
    let kib = u32::try_from(body_bytes.div_ceil(1024)).unwrap_or(u32::MAX);
    let Ok(body_permit) = Arc::clone(&protection.body_budget).try_acquire_many_owned(kib) else {
        return refuse(format!(
            "request bodies in flight would pass {} MiB, the most this server holds at once (--max-inflight-body-bytes); retry shortly",
            protection.max_inflight_body_bytes / (1024 * 1024)
        ));
    };
    let response = next.run(request).await;
    // A streamed answer is still working: its permits go when its body ends.
    match response.extensions().get::<Streamed>() {
        Some(_) => hold_until_end(response, (permit, body_permit)),
        None => response,
    }
}

/// How long past its deadline a request may take to store an answer whose work finished in
/// time: an answer being stored is not cut off (a stored answer the caller never got would
/// come back as a duplicate on retry).
pub(crate) const RECORD_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Middleware: answers 504 when the request runs past the timeout. Agent handlers get the
/// [`Deadline`] and stop there themselves, storing nothing; the cut-off here comes
/// [`RECORD_GRACE`] later, for the routes that do not.
pub async fn timeout(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let limit = state.protection.request_timeout;
    request
        .extensions_mut()
        .insert(Deadline(Instant::now() + limit));
    match tokio::time::timeout(limit + RECORD_GRACE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state
                .metrics
                .timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::Timeout(format!(
                "the request ran longer than {}",
                humantime::format_duration(limit)
            ))
            .into_response()
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
            let mut fixed = ApiError::Http {
                status,
                error_type: "http",
                message,
            }
            .into_response();
            for (name, value) in parts.headers.iter() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    fixed.headers_mut().insert(name, value.clone());
                }
            }
            return fixed;
        }
    };
    let (parts, _) = response.into_parts();
    let mut fixed = ApiError::Http {
        status,
        error_type,
        message,
    }
    .into_response();
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

    fn request(uri: &str, header: Option<&str>) -> Request {
        let mut builder = axum::http::Request::builder().uri(uri);
        if let Some(key) = header {
            builder = builder.header("x-api-key", key);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn partner_uploads_count_as_model_work() {
        assert!(is_model_work(&Method::PUT, "/collaboration/partners"));
        assert!(is_model_work(&Method::POST, "/collaboration/partners"));
        assert!(!is_model_work(&Method::GET, "/collaboration/partners"));
        assert!(is_model_work(&Method::POST, "/embed"));
        assert!(is_model_work(&Method::POST, "/client-health/train"));
        assert!(!is_model_work(&Method::GET, "/results/{id}"));
    }

    #[test]
    fn the_websocket_query_key_is_percent_decoded() {
        let key = |uri, header| presented_key(&request(uri, header));
        assert_eq!(
            key("/ws?x=1&api_key=a%2Bb%3D%20c", None).as_deref(),
            Some("a+b= c")
        );
        assert_eq!(key("/ws?api_key=plain", None).as_deref(), Some("plain"));
        assert_eq!(key("/ws?api_key=q", Some("h")).as_deref(), Some("h"));
        assert_eq!(
            key("/results?api_key=q", None),
            None,
            "only /ws takes the query"
        );
        assert_eq!(key("/ws", None), None);
    }
}
