//! Retries and deadlines of agent requests.
//!
//! - `Idempotency-Key` ([`Replay`]): a retry returns the answer stored for the first try
//!   instead of computing and storing a second one. The key, the route and the caller (its
//!   API key, else its client id) decide the `result_id`, so every instance finds the answer.
//! - [`Deadline`]: the timeout middleware's deadline; agent work past it is answered 504 and
//!   stores nothing.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::http::protection::ClientId;

/// The header a client sets to make a request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `result_id` a request with an `Idempotency-Key` is stored under (none without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Replay {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::validation(
                    "Idempotency-Key",
                    "must be 1 to 128 visible ASCII characters (a UUID is a good key)",
                )
            })?;
        // Scoped to the caller: behind API Gateway (no key check here) its key still is.
        let caller = match parts.headers.get("x-api-key") {
            Some(api_key) => format!("key:{}", hex::encode(Sha256::digest(api_key.as_bytes()))),
            None => parts
                .extensions
                .get::<ClientId>()
                .map_or_else(|| "anonymous".to_string(), |c| c.0.clone()),
        };
        Ok(Self(Some(result_id_for(&caller, parts.uri.path(), key))))
    }
}

/// A version-8 UUID from the SHA-256 of the caller, the route and the key.
fn result_id_for(caller: &str, route: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{caller}\n{route}\n{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// When the request's time is up (set by the timeout middleware).
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_id_depends_on_caller_route_and_key() {
        let id = result_id_for("key:a", "/anomaly/detect", "k-1");
        assert_eq!(id, result_id_for("key:a", "/anomaly/detect", "k-1"));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version 8: {id}");
        for other in [
            result_id_for("key:b", "/anomaly/detect", "k-1"),
            result_id_for("key:a", "/revenue/forecast", "k-1"),
            result_id_for("key:a", "/anomaly/detect", "k-2"),
        ] {
            assert_ne!(id, other);
        }
    }
}
