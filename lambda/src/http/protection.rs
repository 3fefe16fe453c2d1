//! API protection, all configurable ([`ProtectionArgs`]): API keys (`x-api-key`,
//! constant-time comparison), CORS, request body limits, a per-client token-bucket rate limit
//! (governor's GCRA), a bound on in-flight model work and a request timeout. [`Protection`] is
//! the running state; [`crate::http::middleware`] applies it to every request.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mesh_core::config::{AuthMode, ProtectionArgs};
use mesh_core::keys::{ApiKeys, KeysFileError};
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Errors of the protection settings.
#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error(transparent)]
    KeysFile(#[from] KeysFileError),
    #[error("API keys are required (--auth required) but none is configured (MESH_API_KEYS or MESH_API_KEYS_FILE)")]
    RequiredWithoutKeys,
    #[error("listening on {0}, beyond loopback, without API keys: set MESH_API_KEYS or MESH_API_KEYS_FILE, or pass --auth off to serve without them")]
    ExposedWithoutKeys(SocketAddr),
    #[error("--max-inflight must be at least 1")]
    NoInflight,
}

/// The protection of a running server.
pub struct Protection {
    /// The accepted keys.
    keys: ApiKeys,
    pub(crate) keys_required: bool,
    pub(crate) limiter: Option<DefaultKeyedRateLimiter<String>>,
    pub(crate) inflight: Arc<Semaphore>,
    pub(crate) max_inflight: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_data_body_bytes: usize,
    cors_origins: Vec<String>,
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
        let limiter = NonZeroU32::new(args.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(args.rate_limit_burst.max(1)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Ok(Self {
            keys,
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
