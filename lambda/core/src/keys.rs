//! The API keys a deployment accepts (`MESH_API_KEYS`, `MESH_API_KEYS_FILE`), kept as SHA-256
//! digests and compared in constant time: the HTTP server's key check and the WebSocket API's
//! `$connect` authorizer use the same set.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ProtectionArgs;

/// The keys file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading API keys from {path}: {source}")]
pub struct KeysFileError {
    pub path: PathBuf,
    pub source: std::io::Error,
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
    /// trimmed, blanks skipped.
    pub fn load(args: &ProtectionArgs) -> Result<Self, KeysFileError> {
        let mut keys: Vec<String> = args.api_keys.iter().map(|k| k.trim().to_string()).collect();
        if let Some(path) = &args.api_keys_file {
            let text = std::fs::read_to_string(path).map_err(|source| KeysFileError {
                path: path.clone(),
                source,
            })?;
            keys.extend(
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim().to_string()),
            );
        }
        Ok(Self::from_keys(keys.iter().map(String::as_str)))
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
