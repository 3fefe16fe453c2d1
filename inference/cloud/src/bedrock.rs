//! Amazon Bedrock: text from a Claude model through the Converse API or InvokeModel (the
//! Anthropic messages format).

#[cfg(feature = "aws")]
use aws_sdk_bedrockruntime::primitives::Blob;
#[cfg(feature = "aws")]
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, SystemContentBlock,
};
use serde::Serialize;
#[cfg(feature = "aws")]
use serde_json::{json, Value};

use super::{call_resilient, CircuitBreaker, CloudCall, CloudError, Resilience};

/// Claude 3 Haiku, the plan's model.
pub const DEFAULT_BEDROCK_MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const SERVICE: &str = "bedrock";

/// Which Bedrock runtime API carries the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BedrockApi {
    Converse,
    /// InvokeModel with Claude's messages body (`anthropic_version: bedrock-2023-05-31`).
    InvokeModel,
}

/// Generated text and its token counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generated {
    pub text: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub stop_reason: String,
}

#[cfg(feature = "aws")]
type Client = aws_sdk_bedrockruntime::Client;
#[cfg(not(feature = "aws"))]
type Client = super::NoSdk;

/// A Bedrock runtime client for one model.
pub struct Bedrock {
    client: Client,
    model_id: String,
    api: BedrockApi,
    resilience: Resilience,
    breaker: CircuitBreaker,
}

#[cfg(feature = "aws")]
fn bad(message: impl Into<String>) -> CloudError {
    CloudError::BadResponse {
        service: SERVICE.into(),
        message: message.into(),
    }
}

impl Bedrock {
    #[cfg(feature = "aws")]
    pub fn new(
        config: &aws_config::SdkConfig,
        model_id: &str,
        api: BedrockApi,
        resilience: Resilience,
    ) -> Self {
        Self {
            client: aws_sdk_bedrockruntime::Client::new(config),
            model_id: model_id.to_string(),
            api,
            resilience,
            breaker: CircuitBreaker::default(),
        }
    }

    /// The model id, reported as `model_used`.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Text for `prompt` under `system` instructions, at temperature 0.
    pub async fn generate(
        &self,
        system: &str,
        prompt: &str,
        max_tokens: u32,
    ) -> Result<CloudCall<Generated>, CloudError> {
        call_resilient(SERVICE, &self.resilience, &self.breaker, || async {
            match self.api {
                BedrockApi::Converse => self.converse(system, prompt, max_tokens).await,
                BedrockApi::InvokeModel => self.invoke(system, prompt, max_tokens).await,
            }
        })
        .await
    }
}

#[cfg(not(feature = "aws"))]
impl Bedrock {
    async fn converse(&self, _: &str, _: &str, _: u32) -> Result<Generated, CloudError> {
        match self.client {}
    }

    async fn invoke(&self, _: &str, _: &str, _: u32) -> Result<Generated, CloudError> {
        match self.client {}
    }
}

#[cfg(feature = "aws")]
impl Bedrock {
    async fn converse(
        &self,
        system: &str,
        prompt: &str,
        max_tokens: u32,
    ) -> Result<Generated, CloudError> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(prompt.to_string()))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let out = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(system.to_string()))
            .messages(message)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(max_tokens as i32)
                    .temperature(0.0)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| CloudError::from_sdk(SERVICE, &e))?;
        let message = out
            .output()
            .and_then(|o| o.as_message().ok())
            .ok_or_else(|| bad("Converse answered without a message"))?;
        let text: String = message
            .content()
            .iter()
            .filter_map(|b| b.as_text().ok().cloned())
            .collect::<Vec<_>>()
            .join("");
        let usage = out.usage();
        Ok(Generated {
            text,
            input_tokens: usage.map_or(0, |u| u.input_tokens().max(0) as u32),
            output_tokens: usage.map_or(0, |u| u.output_tokens().max(0) as u32),
            stop_reason: out.stop_reason().as_str().to_string(),
        })
    }

    async fn invoke(
        &self,
        system: &str,
        prompt: &str,
        max_tokens: u32,
    ) -> Result<Generated, CloudError> {
        let body = json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "system": system,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        });
        let out = self
            .client
            .invoke_model()
            .model_id(&self.model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body.to_string()))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk(SERVICE, &e))?;
        let answer: Value = serde_json::from_slice(out.body().as_ref())
            .map_err(|e| bad(format!("InvokeModel body is not JSON: {e}")))?;
        let text: String = answer["content"]
            .as_array()
            .ok_or_else(|| bad("InvokeModel answered without `content`"))?
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect();
        let tokens = |k: &str| answer["usage"][k].as_u64().unwrap_or(0) as u32;
        Ok(Generated {
            text,
            input_tokens: tokens("input_tokens"),
            output_tokens: tokens("output_tokens"),
            stop_reason: answer["stop_reason"].as_str().unwrap_or("").to_string(),
        })
    }
}
