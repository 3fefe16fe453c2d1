//! Stopping blocking work whose request is gone. A [`Cancel`] lives in the request's future;
//! when that future is dropped (the deadline passed, the client left) its flag is set, and
//! blocking work that checks the flag between steps ends early instead of computing for
//! nobody.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Sets its flag when dropped.
#[derive(Debug, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// What the blocking work checks: true once the request is gone.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

/// Whether `flag` says the request is gone.
pub fn cancelled(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// Runs blocking `work` on tokio's blocking pool, giving it a check to call between steps: the
/// check turns true once the returned future is dropped (the request's deadline passed or its
/// client left), and the work should then end early. `what` names the work in the error of a
/// worker that panicked.
pub async fn run_blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce(&dyn Fn() -> bool) -> T + Send + 'static,
) -> Result<T, crate::AgentError> {
    let cancel = Cancel::new();
    let gone = cancel.flag();
    let outcome = tokio::task::spawn_blocking(move || work(&|| cancelled(&gone))).await;
    drop(cancel);
    outcome.map_err(|e| crate::AgentError::Unavailable(format!("{what} stopped: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocking_work_stops_when_its_request_future_is_dropped() {
        let steps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let request = {
            let steps = Arc::clone(&steps);
            async move {
                let cancel = Cancel::new();
                let flag = cancel.flag();
                tokio::task::spawn_blocking(move || {
                    for _ in 0..1_000 {
                        if cancelled(&flag) {
                            return;
                        }
                        steps.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                })
                .await
                .unwrap();
                drop(cancel);
            }
        };
        // The deadline passes: the request's future is dropped.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), request).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let after_stop = steps.load(Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(
            steps.load(Ordering::Relaxed),
            after_stop,
            "the work stopped"
        );
        assert!(after_stop < 100, "{after_stop} steps");
    }
}
