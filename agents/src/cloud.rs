//! The cloud providers an agent may use beside its local model, with the policy that picks
//! who answers ([`FallbackPolicy`]), and the report every such response carries: who answered,
//! why a fallback happened, what the cloud call took, and (in `compare` mode) the other answer.

use std::sync::Arc;

use mesh_inference::cloud::{Bedrock, CloudCall, CloudError, Comprehend, FallbackPolicy};
use serde::Serialize;
use utoipa::ToSchema;

/// Amazon Comprehend for market intelligence, under a policy.
#[derive(Clone)]
pub struct SentimentProvider {
    pub comprehend: Arc<Comprehend>,
    pub policy: FallbackPolicy,
}

/// Amazon Bedrock writing NLP-query answers from the retrieved passages, under a policy.
#[derive(Clone)]
pub struct AnswerProvider {
    pub bedrock: Arc<Bedrock>,
    pub policy: FallbackPolicy,
}

/// The cloud providers of the language agents (none: local models only).
#[derive(Clone, Default)]
pub struct CloudProviders {
    pub market: Option<SentimentProvider>,
    pub nlp_query: Option<AnswerProvider>,
}

/// Who answered and why, in every response of an agent with a cloud provider.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProviderReport {
    /// `local`, `cloud-first`, `local-first:<threshold>` or `compare`.
    pub policy: String,
    /// `local` or `cloud`: who produced the main answer.
    pub answered_by: String,
    /// The cloud model asked, when one was.
    pub cloud_model: Option<String>,
    /// Attempts the cloud call made (retries included).
    pub cloud_attempts: Option<u32>,
    pub cloud_latency_ms: Option<f64>,
    /// Why the cloud was asked under `local-first` (the local confidence below the threshold).
    pub upgrade_reason: Option<String>,
}

/// The policy as text.
pub fn policy_name(policy: &FallbackPolicy) -> String {
    match policy {
        FallbackPolicy::LocalOnly => "local".into(),
        FallbackPolicy::CloudFirst => "cloud-first".into(),
        FallbackPolicy::LocalFirst { upgrade_below } => format!("local-first:{upgrade_below}"),
        FallbackPolicy::Compare => "compare".into(),
    }
}

impl ProviderReport {
    /// The report of a local-only answer.
    pub fn local(policy: &FallbackPolicy) -> Self {
        Self {
            policy: policy_name(policy),
            answered_by: "local".into(),
            cloud_model: None,
            cloud_attempts: None,
            cloud_latency_ms: None,
            upgrade_reason: None,
        }
    }

    /// Records a cloud call (its model, attempts and latency; errors carry no attempts).
    pub fn with_call<T>(mut self, model: &str, call: &Result<CloudCall<T>, CloudError>) -> Self {
        self.cloud_model = Some(model.to_string());
        if let Ok(c) = call {
            self.cloud_attempts = Some(c.attempts);
            self.cloud_latency_ms = Some(c.latency_ms);
        }
        self
    }
}

/// What an agent does under a policy, given its local confidence: whether to ask the cloud
/// first, and whether to ask it after the local answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Local,
    CloudThenLocal,
    LocalThenCloud,
    Both,
}

/// The plan of `policy` for a local answer of `local_confidence` (None: not computed yet).
pub fn plan(policy: &FallbackPolicy, local_confidence: Option<f32>) -> Plan {
    match policy {
        FallbackPolicy::LocalOnly => Plan::Local,
        FallbackPolicy::CloudFirst => Plan::CloudThenLocal,
        FallbackPolicy::Compare => Plan::Both,
        FallbackPolicy::LocalFirst { upgrade_below } => match local_confidence {
            Some(c) if c < *upgrade_below => Plan::LocalThenCloud,
            _ => Plan::Local,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_policy() {
        let lf = FallbackPolicy::LocalFirst { upgrade_below: 0.6 };
        assert_eq!(plan(&FallbackPolicy::LocalOnly, Some(0.1)), Plan::Local);
        assert_eq!(
            plan(&FallbackPolicy::CloudFirst, None),
            Plan::CloudThenLocal
        );
        assert_eq!(plan(&FallbackPolicy::Compare, Some(0.9)), Plan::Both);
        assert_eq!(plan(&lf, Some(0.55)), Plan::LocalThenCloud);
        assert_eq!(plan(&lf, Some(0.6)), Plan::Local);
        assert_eq!(policy_name(&lf), "local-first:0.6");
    }
}
