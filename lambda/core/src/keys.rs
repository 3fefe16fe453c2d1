//! The API keys a deployment accepts (`MESH_API_KEYS`, `MESH_API_KEYS_FILE`), kept as SHA-256
//! digests and compared in constant time: the HTTP server's key check and the WebSocket API's
//! `$connect` authorizer use the same set.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ProtectionArgs;

/// The shortest API key accepted at start-up, in characters: a short key can be guessed.
pub const MIN_KEY_CHARS: usize = 16;

/// The configured keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("reading API keys from {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("an API key from {origin} has {chars} characters; keys need at least {MIN_KEY_CHARS} (for example `openssl rand -hex 20`)")]
    TooShort { origin: String, chars: usize },
}

/// The accepted keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// The keys of `--api-keys` and of the lines of `--api-keys-file` (`#` starts a comment),
    /// trimmed, blanks skipped; each at least [`MIN_KEY_CHARS`] long.
    pub fn load(args: &ProtectionArgs) -> Result<Self, KeysError> {
        let mut keys: Vec<(String, String)> = args
            .api_keys
            .iter()
            .map(|k| ("MESH_API_KEYS".to_string(), k.trim().to_string()))
            .collect();
        if let Some(path) = &args.api_keys_file {
            let text = std::fs::read_to_string(path).map_err(|source| KeysError::File {
                path: path.clone(),
                source,
            })?;
            keys.extend(text.lines().enumerate().map(|(i, l)| {
                let key = l.split('#').next().unwrap_or("").trim().to_string();
                (format!("{} line {}", path.display(), i + 1), key)
            }));
        }
        for (origin, key) in &keys {
            let chars = key.chars().count();
            if chars > 0 && chars < MIN_KEY_CHARS {
                return Err(KeysError::TooShort {
                    origin: origin.clone(),
                    chars,
                });
            }
        }
        Ok(Self::from_keys(keys.iter().map(|(_, k)| k.as_str())))
    }

    /// The given keys (blank ones skipped).
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            digests: keys
                .into_iter()
                .filter(|k| !k.is_empty())
                .map(digest)
                .collect(),
        }
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The client id of a valid key, `key:<first 12 hex of its SHA-256>` (never the key),
    /// comparing digests in constant time against every key (no early exit, so timing says
    /// nothing about which key nearly matched).
    pub fn check(&self, presented: &str) -> Option<String> {
        let presented = digest(presented);
        let mut matched = subtle::Choice::from(0);
        for known in &self.digests {
            matched |= known.ct_eq(&presented);
        }
        bool::from(matched).then(|| format!("key:{}", &hex::encode(presented)[..12]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_at_start_naming_where_they_came_from() {
        let args = |keys: &[&str]| ProtectionArgs {
            api_keys: keys.iter().map(|k| k.to_string()).collect(),
            ..ProtectionArgs::default()
        };
        let refused = ApiKeys::load(&args(&["0123456789abcdef0123", "short-key"])).unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("MESH_API_KEYS") && message.contains("9 characters"),
            "{message}"
        );
        assert!(
            !message.contains("short-key"),
            "the key itself is never shown: {message}"
        );
        let keys = ApiKeys::load(&args(&["0123456789abcdef0123"])).unwrap();
        assert!(keys.check("0123456789abcdef0123").is_some());
    }

    #[test]
    fn keys_match_exactly_and_blanks_never() {
        let keys = ApiKeys::from_keys(["k1", "", "a+b= c"]);
        assert!(keys.check("k1").unwrap().starts_with("key:"));
        assert!(keys.check("a+b= c").is_some());
        assert!(keys.check("k2").is_none());
        assert!(keys.check("").is_none());
        assert!(keys.check("k1 ").is_none());
        assert!(ApiKeys::default().is_empty());
    }
}
