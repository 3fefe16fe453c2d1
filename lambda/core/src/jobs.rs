//! Long agent calls as async jobs on the SQS queue `msp-async-processing`
//! (`--async-queue-url` / `MESH_ASYNC_QUEUE_URL`): what travels on the queue and the queue
//! client. [`crate::job_runner`] runs a job.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The plan's queue name.
pub const ASYNC_QUEUE: &str = "msp-async-processing";
/// SQS's largest message body.
pub const MAX_JOB_BYTES: usize = 256 * 1024;

/// `POST /jobs`: which agent, and the body its route takes.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRequest {
    /// Agent name (kebab-case, as `msp-mesh score --agent`), e.g. `revenue-forecasting`.
    pub agent: String,
    /// The request body of the agent's route.
    pub request: Value,
}

/// A queued job: what travels on SQS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: String,
    pub agent: String,
    pub request: Value,
    pub submitted_ms: i64,
}

/// The answer to `POST /jobs` and `GET /jobs/{job_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub job_id: String,
    /// `queued` (answer of `POST /jobs`), `pending` (no result stored yet: queued or running,
    /// or an id this mesh never issued), `done` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The stored answer when `done`: the agent's response with its `result_id` (= `job_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The agent's error when `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

#[cfg(feature = "aws")]
type Client = aws_sdk_sqs::Client;
#[cfg(not(feature = "aws"))]
type Client = crate::NoSdk;

/// Sends jobs to one SQS queue.
pub struct JobQueue {
    client: Client,
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    queue_url: String,
}

/// An SQS SDK error with its context, for messages.
#[cfg(feature = "aws")]
pub fn sqs_error<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}

impl JobQueue {
    /// A queue client (`AWS_ENDPOINT_URL_SQS` for a local server).
    #[cfg(feature = "aws")]
    pub fn new(config: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            queue_url,
        }
    }

    /// Queues one job.
    #[cfg(not(feature = "aws"))]
    pub async fn submit(&self, _: &JobMessage) -> Result<(), String> {
        match self.client {}
    }

    /// Queues one job.
    #[cfg(feature = "aws")]
    pub async fn submit(&self, job: &JobMessage) -> Result<(), String> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(job).map_err(|e| e.to_string())?)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(())
    }
}
