//! The cloud providers an agent may use beside its local model, with the policy that picks
//! who answers ([`FallbackPolicy`]), and the report every such response carries: who answered,
//! why a fallback happened, what the cloud call took, and (in `compare` mode) the other answer.

use std::sync::Arc;

use mesh_cloud::{Bedrock, CloudCall, CloudError, Comprehend, FallbackPolicy};
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
    /// Bedrock writing the compliance agent's explanation of its findings.
    pub compliance: Option<AnswerProvider>,
}

/// A text written under a policy: the local text, or Bedrock's, with the report.
#[derive(Debug, Clone)]
pub struct Written {
    pub text: String,
    /// Whether Bedrock wrote `text`.
    pub by_cloud: bool,
    pub report: ProviderReport,
    pub fallback_reason: Option<String>,
    /// Under `compare`: Bedrock's text (or its error) beside the local one.
    pub comparison: Option<serde_json::Value>,
}

/// Writes a text under `provider`'s policy (local only without one). `local` is the text the
/// local method wrote; `confidence` is the local result's confidence, which a `local-first`
/// policy compares with its threshold.
pub async fn write_under_policy(
    provider: Option<&AnswerProvider>,
    confidence: f32,
    local: String,
    system: &str,
    prompt: &str,
    max_tokens: u32,
) -> Written {
    let policy = provider.map_or(FallbackPolicy::LocalOnly, |p| p.policy);
    let report = ProviderReport::local(&policy);
    let local_only = |report| Written {
        text: local.clone(),
        by_cloud: false,
        report,
        fallback_reason: None,
        comparison: None,
    };
    let Some(provider) = provider else {
        return local_only(report);
    };
    let model = provider.bedrock.model_id().to_string();
    match plan(&policy, Some(confidence)) {
        Plan::Local => local_only(report),
        plan @ (Plan::CloudThenLocal | Plan::LocalThenCloud) => {
            let call = provider.bedrock.generate(system, prompt, max_tokens).await;
            let mut report = report.with_call(&model, &call);
            if plan == Plan::LocalThenCloud {
                report.upgrade_reason = Some(format!(
                    "local confidence {confidence:.3} is below the policy's threshold"
                ));
            }
            match call {
                Ok(c) => Written {
                    text: c.value.text,
                    by_cloud: true,
                    report: ProviderReport {
                        answered_by: "cloud".into(),
                        ..report
                    },
                    fallback_reason: None,
                    comparison: None,
                },
                Err(e) => Written {
                    fallback_reason: Some(format!("{e}; written by the local method")),
                    ..local_only(report)
                },
            }
        }
        Plan::Both => {
            let call = provider.bedrock.generate(system, prompt, max_tokens).await;
            let comparison = match &call {
                Ok(c) => serde_json::json!({"model_used": model, "text": c.value.text,
                    "input_tokens": c.value.input_tokens, "output_tokens": c.value.output_tokens}),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
            Written {
                comparison: Some(comparison),
                ..local_only(report.with_call(&model, &call))
            }
        }
    }
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
