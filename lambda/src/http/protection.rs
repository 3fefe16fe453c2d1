//! API protection, all configurable ([`ProtectionArgs`]): API keys (`x-api-key`,
//! constant-time comparison), CORS, request body limits, a per-client token-bucket rate limit
//! (governor's GCRA), a bound on in-flight model work and a request timeout. [`Protection`] is
//! the running state; [`crate::http::middleware`] applies it to every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, Method};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mesh_core::config::{AuthMode, ProtectionArgs};
use mesh_core::keys::{ApiKeys, KeysError};
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Errors of the protection settings.
#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("API keys are required (--auth required) but none is configured (MESH_API_KEYS or MESH_API_KEYS_FILE)")]
    RequiredWithoutKeys,
    #[error("listening on {0}, beyond loopback, without API keys: set MESH_API_KEYS or MESH_API_KEYS_FILE, or pass --auth off to serve without them")]
    ExposedWithoutKeys(SocketAddr),
    #[error("--max-inflight must be at least 1")]
    NoInflight,
    #[error(
        "--max-inflight-body-bytes ({budget}) must be at least --max-data-body-bytes ({body})"
    )]
    BodyBudgetBelowBody { budget: usize, body: usize },
}

/// The protection of a running server.
pub struct Protection {
    /// The accepted keys.
    keys: ApiKeys,
    pub(crate) keys_required: bool,
    pub(crate) limiter: Option<DefaultKeyedRateLimiter<String>>,
    pub(crate) auth_failures: AuthFailures,
    pub(crate) inflight: Arc<Semaphore>,
    pub(crate) max_inflight: usize,
    /// Request body bytes held by model requests, in KiB permits.
    pub(crate) body_budget: Arc<Semaphore>,
    pub(crate) max_inflight_body_bytes: usize,
    /// Open WebSocket connections.
    pub(crate) ws_slots: Arc<Semaphore>,
    pub(crate) max_ws_connections: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_data_body_bytes: usize,
    cors_origins: Vec<String>,
}

/// The window over which wrong keys are counted per client address.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Wrong keys per client address, in fixed one-minute windows
/// ([`ProtectionArgs::failed_auth_per_minute`]): a guesser is stopped after a few tries.
pub(crate) struct AuthFailures {
    limit: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl AuthFailures {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How long `client` must wait, when it has used up its wrong keys for the window.
    pub(crate) fn blocked_for(&self, client: &str) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let windows = self.windows.lock().expect("lock");
        let (start, count) = windows.get(client)?;
        let elapsed = start.elapsed();
        (elapsed < FAILURE_WINDOW && *count >= self.limit).then(|| FAILURE_WINDOW - elapsed)
    }

    /// Counts a wrong key from `client`.
    pub(crate) fn record(&self, client: &str) {
        if self.limit == 0 {
            return;
        }
        let mut windows = self.windows.lock().expect("lock");
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
        }
        let entry = windows
            .entry(client.to_string())
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// Who sent a request: `key:<first 12 hex of the key's SHA-256>`, else `addr:<ip>`, else
/// `anonymous`. Logged and used as the rate-limit key; never the key itself.
#[derive(Debug, Clone)]
pub struct ClientId(pub String);

impl Protection {
    /// Builds the protection from its settings; `listen` is the server's address (`None`
    /// on Lambda, where API Gateway fronts the function).
    pub fn from_args(
        args: &ProtectionArgs,
        listen: Option<SocketAddr>,
    ) -> Result<Self, ProtectionError> {
        let keys = ApiKeys::load(args)?;
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
        if args.max_inflight_body_bytes < args.max_data_body_bytes {
            return Err(ProtectionError::BodyBudgetBelowBody {
                budget: args.max_inflight_body_bytes,
                body: args.max_data_body_bytes,
            });
        }
        let limiter = NonZeroU32::new(args.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(args.rate_limit_burst.max(1)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Ok(Self {
            keys,
            keys_required,
            limiter,
            auth_failures: AuthFailures::new(args.failed_auth_per_minute),
            inflight: Arc::new(Semaphore::new(args.max_inflight)),
            max_inflight: args.max_inflight,
            body_budget: Arc::new(Semaphore::new(args.max_inflight_body_bytes.div_ceil(1024))),
            max_inflight_body_bytes: args.max_inflight_body_bytes,
            ws_slots: Arc::new(Semaphore::new(args.max_ws_connections)),
            max_ws_connections: args.max_ws_connections,
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

    /// The client id of a valid key ([`ApiKeys::check`]: constant-time comparison).
    pub(crate) fn check_key(&self, presented: &str) -> Option<ClientId> {
        self.keys.check(presented).map(ClientId)
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
            api_keys: vec!["k1-0123456789abcdef".into()],
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
    fn wrong_keys_are_counted_per_address_in_a_window() {
        let failures = AuthFailures::new(3);
        for _ in 0..2 {
            failures.record("addr:10.0.0.1");
        }
        assert!(failures.blocked_for("addr:10.0.0.1").is_none());
        failures.record("addr:10.0.0.1");
        let wait = failures.blocked_for("addr:10.0.0.1").unwrap();
        assert!(wait > Duration::from_secs(59) && wait <= FAILURE_WINDOW);
        assert!(failures.blocked_for("addr:10.0.0.2").is_none());
        let off = AuthFailures::new(0);
        for _ in 0..100 {
            off.record("addr:10.0.0.1");
        }
        assert!(off.blocked_for("addr:10.0.0.1").is_none());
    }

    #[test]
    fn keys_from_env_list_and_file_are_checked_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# team keys\nfile-key-0123456789  # ops\n\n").unwrap();
        let p = Protection::from_args(
            &ProtectionArgs {
                api_keys: vec![" env-key-0123456789 ".into()],
                api_keys_file: Some(file),
                ..args()
            },
            None,
        )
        .unwrap();
        assert!(p.check_key("env-key-0123456789").is_some());
        assert!(p.check_key("file-key-0123456789").is_some());
        assert!(p.check_key("file-key-0123456789 ").is_none());
        assert!(p.check_key("").is_none());
        let id = p.check_key("env-key-0123456789").unwrap().0;
        assert!(id.starts_with("key:") && !id.contains("env-key"), "{id}");
    }
}
