//! Where the agents keep what users give them: the partner directory, trained client-health
//! models, federated runs and the privacy ledger. Every instance of the service reads and
//! writes the same [`UserState`], so a model trained through one is served by all, and a
//! restart loses nothing. The service core backs it with its state store (SQLite locally,
//! DynamoDB on AWS); [`MemoryState`] serves tests and one-shot CLI runs.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A failure of the backing store.
#[derive(Debug, thiserror::Error)]
pub enum UserStateError {
    /// The store could not be read or written.
    #[error("user state store: {0}")]
    Store(String),
    /// A document is larger than the store holds.
    #[error("`{key}` is {bytes} bytes; the store holds at most {limit}")]
    TooLarge {
        key: String,
        bytes: usize,
        limit: usize,
    },
}

impl From<UserStateError> for crate::AgentError {
    fn from(e: UserStateError) -> Self {
        crate::AgentError::Unavailable(e.to_string())
    }
}

/// A stored document and its version (1 after the first write, +1 on each write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub version: u64,
    pub bytes: Vec<u8>,
}

/// A shared, versioned document store with additive ledgers. Calls block (like the state
/// store); agents call them from a blocking thread.
pub trait UserState: Send + Sync + 'static {
    /// The document under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Document>, UserStateError>;
    /// Writes `bytes` under `key` as version `expected + 1` when the stored version is
    /// `expected` (0: no document yet). `Ok(false)` when another writer got there first, and
    /// nothing is written.
    fn put(&self, key: &str, bytes: &[u8], expected: u64) -> Result<bool, UserStateError>;
    /// The keys that start with `prefix`, in order.
    fn keys(&self, prefix: &str) -> Result<Vec<String>, UserStateError>;
    /// Removes the document under `key` (nothing when there is none).
    fn delete(&self, key: &str) -> Result<(), UserStateError>;
    /// Adds `amount` to ledger `name` in one atomic step; returns the new total.
    fn add(&self, name: &str, amount: f64) -> Result<f64, UserStateError>;
    /// The total of ledger `name` (0 before any addition).
    fn total(&self, name: &str) -> Result<f64, UserStateError>;
}

/// Stores `bytes` as a new document under `key` (one that must not exist yet).
/// `Ok(false)` when it does.
pub fn create(state: &dyn UserState, key: &str, bytes: &[u8]) -> Result<bool, UserStateError> {
    state.put(key, bytes, 0)
}

/// A [`UserState`] in this process's memory: for tests and one-shot runs, never for a service
/// (it is gone when the process ends).
#[derive(Default)]
pub struct MemoryState {
    documents: Mutex<BTreeMap<String, Document>>,
    ledgers: Mutex<BTreeMap<String, f64>>,
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }
}

impl UserState for MemoryState {
    fn get(&self, key: &str) -> Result<Option<Document>, UserStateError> {
        Ok(self.documents.lock().expect("documents").get(key).cloned())
    }

    fn put(&self, key: &str, bytes: &[u8], expected: u64) -> Result<bool, UserStateError> {
        let mut documents = self.documents.lock().expect("documents");
        let current = documents.get(key).map_or(0, |d| d.version);
        if current != expected {
            return Ok(false);
        }
        documents.insert(
            key.to_string(),
            Document {
                version: expected + 1,
                bytes: bytes.to_vec(),
            },
        );
        Ok(true)
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>, UserStateError> {
        Ok(self
            .documents
            .lock()
            .expect("documents")
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), UserStateError> {
        self.documents.lock().expect("documents").remove(key);
        Ok(())
    }

    fn add(&self, name: &str, amount: f64) -> Result<f64, UserStateError> {
        let mut ledgers = self.ledgers.lock().expect("ledgers");
        let total = ledgers.entry(name.to_string()).or_insert(0.0);
        *total += amount;
        Ok(*total)
    }

    fn total(&self, name: &str) -> Result<f64, UserStateError> {
        Ok(self
            .ledgers
            .lock()
            .expect("ledgers")
            .get(name)
            .copied()
            .unwrap_or(0.0))
    }
}

/// Checks any [`UserState`] against the contract: versions, conflicts, prefixes, ledgers.
/// The backends' tests call it on a fresh store.
pub fn check_contract(state: &dyn UserState) {
    assert_eq!(state.get("a/1").unwrap(), None);
    assert!(create(state, "a/1", b"one").unwrap());
    assert!(
        !create(state, "a/1", b"again").unwrap(),
        "a second create must lose"
    );
    assert!(state.put("a/1", b"two", 1).unwrap());
    assert!(
        !state.put("a/1", b"stale", 1).unwrap(),
        "a stale version must lose"
    );
    assert_eq!(
        state.get("a/1").unwrap(),
        Some(Document {
            version: 2,
            bytes: b"two".to_vec()
        })
    );
    assert!(create(state, "a/2", b"").unwrap());
    assert!(create(state, "b/1", b"x").unwrap());
    assert_eq!(state.keys("a/").unwrap(), vec!["a/1", "a/2"]);
    state.delete("a/2").unwrap();
    state.delete("a/never").unwrap();
    assert_eq!(state.keys("a/").unwrap(), vec!["a/1"]);
    assert_eq!(state.total("eps").unwrap(), 0.0);
    assert_eq!(state.add("eps", 0.5).unwrap(), 0.5);
    assert_eq!(state.add("eps", 0.25).unwrap(), 0.75);
    assert_eq!(state.total("eps").unwrap(), 0.75);
    assert_eq!(state.total("other").unwrap(), 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_state_keeps_the_contract() {
        check_contract(&MemoryState::new());
    }
}
