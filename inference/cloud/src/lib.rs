//! Cloud model providers, optional upgrades or fallbacks of the local models: Amazon Bedrock
//! (Claude 3 Haiku through Converse or InvokeModel) and Amazon Comprehend (DetectSentiment,
//! DetectEntities, DetectKeyPhrases). Every call runs under the same resilience: a timeout per
//! attempt, retries with exponential backoff and jitter for throttling, server errors,
//! timeouts and network errors, and a circuit breaker that fails fast after repeated failures.
//! The SDK's own retries are off so attempts are counted and reported here. Which provider
//! answers is an agent's [`FallbackPolicy`].
//!
//! The SDK clients need the `aws` feature. Without it the provider types still exist, so the
//! agents compile unchanged, but none can be constructed: a build without AWS answers locally.

pub mod bedrock;
pub mod comprehend;

use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[cfg(feature = "aws")]
use aws_sdk_comprehend::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(feature = "aws")]
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde::Serialize;

pub use bedrock::{Bedrock, BedrockApi, Generated, DEFAULT_BEDROCK_MODEL};
pub use comprehend::{Comprehend, ComprehendAnalysis, COMPREHEND_MODEL};

/// The SDK client of a build without the `aws` feature: it has no value, so a provider holding
/// one cannot exist.
#[cfg(not(feature = "aws"))]
#[derive(Debug, Clone, Copy)]
pub enum NoSdk {}

/// Why a cloud call did not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    #[error("{service} throttled the request: {message}")]
    Throttled { service: String, message: String },
    #[error("{service} failed with a server error: {message}")]
    Server { service: String, message: String },
    #[error("{service} did not answer within {timeout_ms} ms")]
    Timeout { service: String, timeout_ms: u128 },
    #[error("{service} could not be reached: {message}")]
    Network { service: String, message: String },
    #[error("{service} rejected the request: {message}")]
    Rejected { service: String, message: String },
    #[error("{service} answered something unreadable: {message}")]
    BadResponse { service: String, message: String },
    #[error(
        "{service} circuit is open after {failures} failures in a row; retry in {retry_in_ms} ms"
    )]
    CircuitOpen {
        service: String,
        failures: u32,
        retry_in_ms: u128,
    },
}

impl CloudError {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Network { .. }
        )
    }

    /// Classifies an SDK error by its code and HTTP status.
    #[cfg(feature = "aws")]
    pub fn from_sdk<E>(service: &str, e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let service = service.to_string();
        match e {
            SdkError::TimeoutError(_) => Self::Timeout {
                service,
                timeout_ms: 0,
            },
            SdkError::DispatchFailure(d) => Self::Network {
                service,
                message: format!("{d:?}"),
            },
            SdkError::ServiceError(context) => {
                let err = context.err();
                let code = err.code().unwrap_or("Unknown");
                let message = format!("{code}: {}", err.message().unwrap_or(""));
                let status = Some(context.raw().status().as_u16());
                if code.contains("Throttl")
                    || code == "TooManyRequestsException"
                    || status == Some(429)
                {
                    Self::Throttled { service, message }
                } else if status.is_some_and(|s| s >= 500)
                    || code.contains("InternalServer")
                    || code.contains("ServiceUnavailable")
                {
                    Self::Server { service, message }
                } else {
                    Self::Rejected { service, message }
                }
            }
            other => Self::BadResponse {
                service,
                message: DisplayErrorContext(other).to_string(),
            },
        }
    }
}

/// Timeouts, retries and circuit breaking of one provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resilience {
    /// Longest one attempt may take.
    pub attempt_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled after each further one (with jitter).
    pub initial_backoff: Duration,
    /// Failed calls in a row that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit fails fast before it lets one call through.
    pub breaker_cooldown: Duration,
    /// Longest a whole call may take, attempts and backoff included: it ends before the
    /// request's own timeout, so a hung service becomes a recorded failure and the local
    /// fallback still answers in time.
    pub budget: Duration,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(10),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            budget: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Default)]
struct BreakerState {
    failures_in_a_row: u32,
    open_until: Option<Instant>,
}

/// A circuit breaker: closed, open (fail fast) for a cooldown after `threshold` failed calls in
/// a row, then half-open (one call through; success closes it, failure opens it again).
#[derive(Debug, Default)]
pub struct CircuitBreaker {
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    fn check(&self, service: &str) -> Result<(), CloudError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.open_until {
            Some(until) if Instant::now() < until => Err(CloudError::CircuitOpen {
                service: service.to_string(),
                failures: state.failures_in_a_row,
                retry_in_ms: (until - Instant::now()).as_millis(),
            }),
            Some(_) => {
                // Half-open: this call goes through; others wait for its outcome.
                state.open_until = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record(&self, ok: bool, r: &Resilience) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            *state = BreakerState::default();
        } else {
            state.failures_in_a_row += 1;
            if state.failures_in_a_row >= r.breaker_threshold {
                state.open_until = Some(Instant::now() + r.breaker_cooldown);
            }
        }
    }

    /// Whether calls fail fast now.
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open_until.is_some_and(|u| Instant::now() < u)
    }
}

/// A successful cloud answer and what it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudCall<T> {
    pub value: T,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    pub latency_ms: f64,
}

/// Runs `attempt` under the resilience policy: per-attempt timeout, retries of retryable
/// errors with exponential backoff and jitter, and the circuit breaker.
pub async fn call_resilient<T, F, Fut>(
    service: &str,
    resilience: &Resilience,
    breaker: &CircuitBreaker,
    mut attempt: F,
) -> Result<CloudCall<T>, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    breaker.check(service)?;
    let started = Instant::now();
    let deadline = started + resilience.budget;
    let mut backoff = resilience.initial_backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        // Each attempt gets its timeout, cut to what is left of the call's budget.
        let limit = resilience
            .attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let outcome = match tokio::time::timeout(limit, attempt()).await {
            Ok(result) => result,
            Err(_) => Err(CloudError::Timeout {
                service: service.to_string(),
                timeout_ms: limit.as_millis(),
            }),
        };
        match outcome {
            Ok(value) => {
                breaker.record(true, resilience);
                return Ok(CloudCall {
                    value,
                    attempts,
                    latency_ms: started.elapsed().as_secs_f64() * 1e3,
                });
            }
            Err(e)
                if e.retryable()
                    && attempts < resilience.max_attempts
                    && Instant::now() + backoff < deadline =>
            {
                tracing::debug!(service, attempts, error = %e, "retrying");
                tokio::time::sleep(jittered(backoff)).await;
                backoff *= 2;
            }
            Err(e) => {
                breaker.record(false, resilience);
                return Err(e);
            }
        }
    }
}

/// `d` scaled by a factor in [0.5, 1) (decorrelates clients retrying together).
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let fraction = 0.5 + (nanos % 1000) as f64 / 2000.0;
    d.mul_f64(fraction)
}

/// Which provider answers an agent's requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "policy", rename_all = "kebab-case")]
pub enum FallbackPolicy {
    /// The local model only (the default; no cloud call is ever made).
    LocalOnly,
    /// The cloud model; the local one when the cloud call fails.
    CloudFirst,
    /// The local model; the cloud one when the local answer's confidence is below
    /// `upgrade_below` (kept local if the cloud call fails).
    LocalFirst { upgrade_below: f32 },
    /// Both; the local answer, with the cloud's beside it for comparison.
    Compare,
}

/// Default confidence below which `local-first` asks the cloud.
pub const DEFAULT_UPGRADE_BELOW: f32 = 0.6;

impl FromStr for FallbackPolicy {
    type Err = String;

    /// `local`, `cloud-first`, `local-first` (or `local-first:0.7`), `compare`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(n, a)| (n, Some(a)));
        match (name.trim(), arg) {
            ("local" | "local-only", None) => Ok(Self::LocalOnly),
            ("cloud-first", None) => Ok(Self::CloudFirst),
            ("compare", None) => Ok(Self::Compare),
            ("local-first", None) => Ok(Self::LocalFirst {
                upgrade_below: DEFAULT_UPGRADE_BELOW,
            }),
            ("local-first", Some(t)) => match t.trim().parse::<f32>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(Self::LocalFirst { upgrade_below: v }),
                _ => Err(format!("`{t}` is not a confidence between 0 and 1")),
            },
            _ => Err(format!(
                "`{s}` is not a provider policy: local, cloud-first, local-first[:THRESHOLD] or compare"
            )),
        }
    }
}

impl FallbackPolicy {
    /// Whether the policy ever calls the cloud.
    pub fn uses_cloud(&self) -> bool {
        *self != Self::LocalOnly
    }
}

/// The AWS configuration of the cloud providers: the environment's (credentials, region,
/// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_COMPREHEND`), `us-east-1` when no
/// region is set, and no SDK retries (ours count attempts).
#[cfg(feature = "aws")]
pub async fn aws_config() -> aws_config::SdkConfig {
    mesh_inference::aws::sdk_config(mesh_inference::aws::SdkRetries::Off).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> Resilience {
        Resilience {
            attempt_timeout: Duration::from_millis(50),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            breaker_threshold: 2,
            breaker_cooldown: Duration::from_millis(100),
            budget: Duration::from_secs(5),
        }
    }

    fn throttled() -> CloudError {
        CloudError::Throttled {
            service: "s".into(),
            message: "slow down".into(),
        }
    }

    #[test]
    fn policies_parse() {
        assert_eq!("local".parse(), Ok(FallbackPolicy::LocalOnly));
        assert_eq!("cloud-first".parse(), Ok(FallbackPolicy::CloudFirst));
        assert_eq!("compare".parse(), Ok(FallbackPolicy::Compare));
        assert_eq!(
            "local-first:0.75".parse(),
            Ok(FallbackPolicy::LocalFirst {
                upgrade_below: 0.75
            })
        );
        assert_eq!(
            "local-first".parse(),
            Ok(FallbackPolicy::LocalFirst {
                upgrade_below: DEFAULT_UPGRADE_BELOW
            })
        );
        assert!("local-first:2".parse::<FallbackPolicy>().is_err());
        assert!("cloud".parse::<FallbackPolicy>().is_err());
    }

    /// A service that never answers: the call gives up when its budget ends (not after every
    /// attempt's full timeout), and each such call counts as a failure for the breaker.
    #[tokio::test]
    async fn a_hung_service_costs_one_budget_and_opens_the_breaker() {
        let resilience = Resilience {
            attempt_timeout: Duration::from_secs(10),
            budget: Duration::from_millis(150),
            ..fast()
        };
        let breaker = CircuitBreaker::default();
        for _ in 0..2 {
            let started = Instant::now();
            let outcome: Result<CloudCall<()>, _> =
                call_resilient("s", &resilience, &breaker, std::future::pending).await;
            assert!(
                matches!(outcome, Err(CloudError::Timeout { .. })),
                "{outcome:?}"
            );
            let took = started.elapsed();
            assert!(took < Duration::from_millis(1000), "{took:?}");
        }
        assert!(breaker.is_open(), "two hung calls open the breaker");
    }

    #[tokio::test]
    async fn retries_retryable_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let breaker = CircuitBreaker::default();
        let out = call_resilient("s", &fast(), &breaker, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(throttled())
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!((out.value, out.attempts), (2, 3));
    }

    #[tokio::test]
    async fn does_not_retry_a_rejection_and_times_out_slow_attempts() {
        let calls = AtomicU32::new(0);
        let breaker = CircuitBreaker::default();
        let err = call_resilient("s", &fast(), &breaker, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<(), _>(CloudError::Rejected {
                    service: "s".into(),
                    message: "bad".into(),
                })
            }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, CloudError::Rejected { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let err = call_resilient("s", &fast(), &CircuitBreaker::default(), || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, CloudError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(
            err,
            CloudError::Timeout {
                service: "s".into(),
                timeout_ms: 50
            }
        );
    }

    #[tokio::test]
    async fn the_breaker_opens_fails_fast_and_recovers() {
        let r = fast();
        let breaker = CircuitBreaker::default();
        let calls = AtomicU32::new(0);
        for _ in 0..2 {
            let _ = call_resilient("s", &r, &breaker, || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(throttled()) }
            })
            .await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 6, "3 attempts per call");
        assert!(breaker.is_open());
        let err = call_resilient("s", &r, &breaker, || async { Ok::<_, CloudError>(()) })
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::CircuitOpen { failures: 2, .. }));
        tokio::time::sleep(r.breaker_cooldown).await;
        // Half-open: one call through; its success closes the circuit.
        call_resilient("s", &r, &breaker, || async { Ok::<_, CloudError>(()) })
            .await
            .unwrap();
        assert!(!breaker.is_open());
    }
}
