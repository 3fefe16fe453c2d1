//! Retries and deadlines of agent requests.
//!
//! - `Idempotency-Key` ([`Replay`]): a retry returns the answer stored for the first try
//!   instead of computing and storing a second one. The key, the route and the caller (its
//!   API key, else its client id) decide the `result_id`, so every instance finds the answer.
//!   A try [`claim`]s its id in the user state before it works, so a concurrent try (on any
//!   instance) waits for the first one's answer instead of doing the work again.
//! - [`Deadline`]: the timeout middleware's deadline; agent work past it is answered 504 and
//!   stores nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use mesh_agents::user_state::{create, UserState, UserStateError};
use mesh_core::store::{new_result_id, now_ms};

use crate::http::error::ApiError;
use crate::http::protection::ClientId;

/// The header a client sets to make a request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How errors about the header name it.
pub const IDEMPOTENCY_KEY_FIELD: &str = "Idempotency-Key";

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
                    IDEMPOTENCY_KEY_FIELD,
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

/// Where the claim of a running try on `result_id` is kept in the user state.
fn claim_key(result_id: &str) -> String {
    format!("idempotency/{result_id}")
}

/// The answer of [`claim`].
pub enum Claim {
    /// This try runs the work; the claim goes when the guard does.
    Ours(ClaimGuard),
    /// Another try holds an unexpired claim.
    Busy,
}

/// Claims `result_id` for this try for `hold` (after which a crashed try's claim may be
/// taken over), in one conditional write, so two tries on any instances never both hold it.
/// Blocks (user-state calls).
pub fn claim(
    state: &Arc<dyn UserState>,
    result_id: &str,
    hold: Duration,
) -> Result<Claim, UserStateError> {
    let key = claim_key(result_id);
    let now = now_ms();
    let until = now + hold.as_millis() as i64;
    // The try's own id tells its claim from a later one that took over an expired claim.
    let doc = serde_json::json!({ "until_ms": until, "try": new_result_id() }).to_string();
    let ours = || {
        Claim::Ours(ClaimGuard {
            state: Arc::clone(state),
            key: key.clone(),
            doc: doc.clone(),
        })
    };
    if create(state.as_ref(), &key, doc.as_bytes())? {
        return Ok(ours());
    }
    let Some(held) = state.get(&key)? else {
        // Released between the two calls: the next look finds the answer or claims it.
        return Ok(Claim::Busy);
    };
    let held_until = serde_json::from_slice::<serde_json::Value>(&held.bytes)
        .ok()
        .and_then(|v| v["until_ms"].as_i64())
        .unwrap_or(0);
    if held_until < now && state.put(&key, doc.as_bytes(), held.version)? {
        return Ok(ours());
    }
    Ok(Claim::Busy)
}

/// A held claim: dropping it releases the claim (from a blocking thread), unless another try
/// has taken it over since it expired.
pub struct ClaimGuard {
    state: Arc<dyn UserState>,
    key: String,
    doc: String,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let state = Arc::clone(&self.state);
        let (key, doc) = (std::mem::take(&mut self.key), std::mem::take(&mut self.doc));
        let release = move || {
            let still_ours =
                |held: &mesh_agents::user_state::Document| held.bytes == doc.as_bytes();
            let released = match state.get(&key) {
                Ok(Some(held)) if still_ours(&held) => state.delete(&key),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = released {
                tracing::warn!(key, error = %e, "releasing an idempotency claim failed; it expires by itself");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

/// When the request's time is up (set by the timeout middleware).
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_agents::user_state::MemoryState;

    #[test]
    fn one_try_holds_a_claim_until_it_is_released_or_expires() {
        let state: Arc<dyn UserState> = Arc::new(MemoryState::new());
        let hour = Duration::from_secs(3600);
        let first = claim(&state, "r1", hour).unwrap();
        assert!(matches!(first, Claim::Ours(_)));
        assert!(matches!(claim(&state, "r1", hour).unwrap(), Claim::Busy));
        assert!(
            matches!(claim(&state, "r2", hour).unwrap(), Claim::Ours(_)),
            "another id is free"
        );
        drop(first);
        assert!(
            matches!(claim(&state, "r1", hour).unwrap(), Claim::Ours(_)),
            "released"
        );
        // A claim past its hold (its try crashed) is taken over, once.
        let stale = claim(&state, "r3", Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let taken = claim(&state, "r3", hour).unwrap();
        assert!(matches!(taken, Claim::Ours(_)));
        assert!(matches!(claim(&state, "r3", hour).unwrap(), Claim::Busy));
        drop(stale);
        assert!(
            matches!(claim(&state, "r3", hour).unwrap(), Claim::Busy),
            "the stale try's release leaves the new claim"
        );
        drop(taken);
        assert!(matches!(claim(&state, "r3", hour).unwrap(), Claim::Ours(_)));
    }

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
